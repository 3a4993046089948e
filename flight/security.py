"""Who may call, and over what: bearer-token middleware, TLS material, bind checks."""

from __future__ import annotations

import base64
import hmac
import ipaddress
from typing import Any

import pyarrow.flight as fl

from flight.errors import to_flight_error
from foundation import InvalidArgument, Settings, Unauthenticated


class BearerTokenMiddlewareFactory(fl.ServerMiddlewareFactory):
    """Refuses every call whose ``authorization`` header is not ``Bearer <token>``.

    With no token (auth off) every call passes, and a login is still answered.

    A ``Handshake`` may instead send ``Basic`` credentials whose password is the
    token (any user name): it is answered with the ``Bearer`` header, which is how
    Flight SQL clients (ADBC's username/password, JDBC's user/password) log in.
    """

    def __init__(self, token: str | None) -> None:
        super().__init__()
        self._token = token.encode() if token is not None else None
        self._expected = b"Bearer " + self._token if token is not None else None

    def start_call(
        self, info: fl.CallInfo, headers: dict[str, list[Any]]
    ) -> fl.ServerMiddleware | None:
        handshake = info.method == fl.FlightMethod.HANDSHAKE
        if self._expected is None:  # auth off: a login gets a token that means nothing
            return _SendBearer("Bearer anonymous") if handshake else None
        for value in headers.get("authorization", []):
            raw = value if isinstance(value, bytes) else str(value).encode()
            if hmac.compare_digest(raw, self._expected):
                return None
            if handshake and self._basic_ok(raw):
                return _SendBearer(self._expected.decode())
        raise to_flight_error(
            Unauthenticated(
                "missing or wrong bearer token (send 'authorization: Bearer <token>', "
                "or log in with any user name and the token as password)"
            )
        )

    def _basic_ok(self, raw: bytes) -> bool:
        scheme, _, encoded = raw.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            padded = encoded.strip() + b"=" * (-len(encoded.strip()) % 4)  # Go sends it unpadded
            _user, sep, password = base64.b64decode(padded, validate=True).partition(b":")
        except ValueError:
            return False
        return bool(sep) and self._token is not None and hmac.compare_digest(password, self._token)


class HandshakeOk(fl.ServerAuthHandler):
    """A ``Handshake`` that succeeds: who may call is :class:`BearerTokenMiddlewareFactory`'s
    business, but Flight SQL clients handshake first (to log in) even when auth is off."""

    def authenticate(self, outgoing: Any, incoming: Any) -> None:
        return None

    def is_valid(self, token: bytes) -> str:
        return ""


class _SendBearer(fl.ServerMiddleware):
    """Answers a Basic login with the bearer header the client sends from then on."""

    def __init__(self, header: str) -> None:
        super().__init__()
        self._header = header

    def sending_headers(self) -> dict[str, str]:
        return {"authorization": self._header}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Without a token, serve loopback only unless explicitly allowed."""
    remote = not is_loopback(settings.host)
    if settings.token is None and remote and not settings.allow_remote_without_token:
        raise InvalidArgument(
            f"refusing to listen on {settings.host} without a token: set QUIVER_TOKEN "
            "(--token), bind 127.0.0.1, or set QUIVER_ALLOW_REMOTE_WITHOUT_TOKEN=true"
        )


def tls_certificates(settings: Settings) -> list[fl.CertKeyPair] | None:
    if settings.tls_cert is None and settings.tls_key is None:
        return None
    if settings.tls_cert is None or settings.tls_key is None:
        raise InvalidArgument("TLS needs both tls_cert and tls_key")
    return [fl.CertKeyPair(settings.tls_cert.read_bytes(), settings.tls_key.read_bytes())]


def root_certificates(settings: Settings, uri: str) -> bytes | None:
    """The root certificates to trust when calling the Flight server at ``uri``: for
    ``grpc+tls``, the PEM file ``tls_root_certs`` names, else ``tls_cert`` (a self-signed
    server's own certificate), else None (the system's roots); None for plain ``grpc``."""
    if not uri.startswith("grpc+tls://"):
        return None
    path = settings.tls_root_certs or settings.tls_cert
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidArgument(
            f"cannot read the TLS root certificates {str(path)!r}: {exc.strerror or exc}"
        ) from None


def host_for_uri(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
