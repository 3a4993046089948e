"""Pure ASGI middleware: request ids, body cap, bearer auth (metrics: ``metrics.py``).

Pure ASGI (not ``BaseHTTPMiddleware``) so streamed bodies pass through
untouched, batch by batch.
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PREFIXES = ("/health", "/metrics", "/docs", "/openapi.json", "/redoc")


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


class RequestId:
    """Every response carries ``X-Request-ID``, echoing the client's when sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        rid = given[:200] if given else uuid.uuid4().hex.encode()
        scope.setdefault("state", {})["request_id"] = rid.decode("latin-1")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid)]
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the cap.

    An ``HTTPException`` so that FastAPI's body parsing (which turns other
    exceptions into a 400) and Starlette's form parser let it through to the
    app's HTTP error handler: the client gets a 413 with ``{"detail": ...}``.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the limit of {limit} bytes")


UPLOAD_ROUTE = "x-quiver-upload"
"""Set in a route's ``openapi_extra``: its body is an upload, under the larger limit."""


def _is_upload(scope: Scope) -> bool:
    extra = getattr(scope.get("route"), "openapi_extra", None)
    return bool(extra and extra.get(UPLOAD_ROUTE))


class BodyLimit:
    """Refuse request bodies over their limit with 413, declared or streamed.

    Uploads (routes marked :data:`UPLOAD_ROUTE`) may send ``max_bytes``; every other
    body (JSON: materialize, names, notebook edits) ``request_max_bytes``, so a huge
    JSON document is refused before it is read, let alone parsed. The limit is
    chosen when the body is first read, once routing has named the route.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, request_max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.request_max_bytes = min(request_max_bytes or max_bytes, max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        size = int(declared) if declared is not None and declared.isdigit() else None
        if size is not None and size > self.max_bytes:  # over every limit: before routing
            await _send_json(send, 413, self._too_large(self.max_bytes), [])
            return
        seen = 0
        limit: int | None = None
        started = False

        async def counting_receive() -> Message:
            nonlocal seen, limit
            if limit is None:
                limit = self.max_bytes if _is_upload(scope) else self.request_max_bytes
                if size is not None and size > limit:
                    raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:
            if not started:
                await _send_json(send, 413, {"detail": exc.detail}, [])

    @staticmethod
    def _too_large(limit: int) -> dict[str, Any]:
        return {"detail": f"request body exceeds the limit of {limit} bytes"}


WEB_COOKIE = "quiver_web"
"""The web UI's sign-in cookie (``rest/web.py``): a browser sends no bearer header on a page
load or a WebSocket."""


def web_credential(token: str) -> str:
    """The cookie's value: derived from the token, so the cookie is no bearer token elsewhere."""
    return hmac.new(token.encode(), b"quiver web ui", "sha256").hexdigest()


def _same_origin(scope: Scope) -> bool:
    origin = _header(scope, b"origin")
    if origin is None:  # a page load, an image: never a cross-site write
        return scope["type"] == "http" and scope.get("method") in ("GET", "HEAD")
    host = _header(scope, b"host") or b""
    return origin.partition(b"://")[2] == host


def _cookie(scope: Scope, name: str) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == b"cookie":
            for part in value.split(b";"):
                k, _, v = part.strip().partition(b"=")
                if k == name.encode():
                    return v
    return None


def authorized(scope: Scope, token: str) -> bool:
    """The bearer token, or the web UI's cookie on a same-origin request (SameSite=Strict
    does not tell another port of the same host apart, the ``Origin`` header does)."""
    given = _header(scope, b"authorization") or b""
    scheme, _, credential = given.partition(b" ")
    if scheme.lower() == b"bearer" and hmac.compare_digest(credential.strip(), token.encode()):
        return True
    cookie = _cookie(scope, WEB_COOKIE)
    return (
        cookie is not None
        and hmac.compare_digest(cookie, web_credential(token).encode())
        and _same_origin(scope)
    )


class BearerAuth:
    """With a token configured, ``/v1/*`` and ``/mcp`` need ``Authorization: Bearer <token>``
    (or the web UI's cookie, :func:`authorized`)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token or None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if not path.startswith("/v1/") and path not in ("/v1", "/mcp"):  # /mcp: the same tools
            await self.app(scope, receive, send)
            return
        if authorized(scope, self.token):
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"authorization") or b""
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401, "reason": "unauthenticated"})
            return
        detail = "missing bearer token" if not given else "invalid bearer token"
        await _send_json(send, 401, {"detail": detail}, [(b"www-authenticate", b"Bearer")])
