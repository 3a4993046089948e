"""Who may call, and over what: bearer-token middleware, TLS material, bind checks."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

import pyarrow.flight as fl

from flight.errors import to_flight_error
from foundation import InvalidArgument, Settings, Unauthenticated


class BearerTokenMiddlewareFactory(fl.ServerMiddlewareFactory):
    """Refuses every call whose ``authorization`` header is not ``Bearer <token>``."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._expected = f"Bearer {token}".encode()

    def start_call(self, info: fl.CallInfo, headers: dict[str, list[Any]]) -> None:
        for value in headers.get("authorization", []):
            raw = value if isinstance(value, bytes) else str(value).encode()
            if hmac.compare_digest(raw, self._expected):
                return None
        raise to_flight_error(
            Unauthenticated("missing or wrong bearer token (send 'authorization: Bearer <token>')")
        )


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


def host_for_uri(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
