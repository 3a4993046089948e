"""The web UI's files (the ``web`` package: plain ES modules, one stylesheet), served at ``/``.

The API stays under ``/v1``; the UI is one more client of it. What this module adds:

- ``/`` and the UI's own pages (``/n/<notebook path>``, ``/artifacts``, ``/logs``) answer
  ``index.html``, so a reload or a shared link opens the same view.
- Assets live under ``/ui/<build>/``, where ``<build>`` is a digest of every file of the UI:
  the URL changes whenever a file does, so they are cached as immutable; ``index.html`` is
  never cached. A body is gzipped once, in memory, when a client first accepts it.
- A strict Content-Security-Policy on every page: scripts, styles, fonts and connections
  only from this origin (WebSockets included), images also as ``data:`` URLs, no framing by
  other sites, no plugins, no inline script.
- With a token set (``QUIVER_TOKEN``) the pages need it too. A browser cannot send a bearer
  header on a page load or a WebSocket, so ``/login`` (or ``/?token=...``, the link
  ``quiver serve`` prints) trades the token for an HttpOnly, SameSite=Strict cookie that
  :class:`rest.middleware.BearerAuth` accepts from same-origin requests.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import hmac
import html
import importlib.resources
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from foundation import Settings
from rest.middleware import WEB_COOKIE, authorized, web_credential

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
    ".woff2": "font/woff2",
}
"""What is served, by extension; anything else under ``web/`` (build scripts) is not."""

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' %STYLE%; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; frame-src 'self'; child-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'self'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP.replace(" %STYLE%", ""),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
PUBLIC = frozenset({"style.css", "icon.svg"})
"""Assets the sign-in page itself uses; every other file needs the token when one is set."""
IMMUTABLE = "public, max-age=31536000, immutable"
PAGES = ("/", "/n/{path:path}", "/artifacts", "/artifacts/{path:path}", "/logs")
"""The UI's own URLs: each answers ``index.html`` (the client routes by path)."""


@dataclass(frozen=True)
class Asset:
    body: bytes
    etag: str
    media_type: str

    @functools.cached_property
    def gzipped(self) -> bytes | None:
        """The body gzipped, made on the first request that accepts it (an app starts
        without compressing the whole UI); None for a small file, sent as it is."""
        return gzip.compress(self.body, 6, mtime=0) if len(self.body) > 1024 else None


def web_root() -> Path:
    """The folder of the ``web`` package (package data of an installed Quiver too)."""
    return Path(str(importlib.resources.files("web")))


class Assets:
    """Every servable file of the UI, read once (a few hundred kB) and kept in memory."""

    def __init__(self, root: Path) -> None:
        self.files: dict[str, Asset] = {}
        digest = hashlib.sha256()
        for path in sorted(root.rglob("*")):
            kind = TYPES.get(path.suffix)
            if kind is None or not path.is_file():
                continue
            rel = path.relative_to(root).as_posix()
            body = path.read_bytes()
            digest.update(rel.encode() + b"\0" + body)
            tag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            self.files[rel] = Asset(body, tag, kind)
        self.build = digest.hexdigest()[:12]
        self.prefix = f"/ui/{self.build}/"

    def page(self, name: str) -> bytes:
        """An HTML page with its asset links pointing at this build, and a ``modulepreload``
        of every module of the UI: the browser fetches them at once rather than one level of
        imports after the other (the editor's module is loaded later, on purpose)."""
        preload = b"".join(
            b'<link rel="modulepreload" href="/ui/BUILD/' + rel.encode() + b'">\n'
            for rel in self.files
            if rel.endswith(".js") and not rel.startswith("vendor/")
        )
        body = self.files[name].body.replace(b"<!--modules-->\n", preload)
        return body.replace(b"/ui/BUILD/", self.prefix.encode())


def _response(request: Request, asset: Asset, cache: str, body: bytes | None = None) -> Response:
    headers = {**SECURITY_HEADERS, "Cache-Control": cache}
    if body is None:  # a file as it is (a page is filled in: no validator)
        headers["ETag"] = asset.etag
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=headers)
        body = asset.body
        if asset.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
            body = asset.gzipped
            headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept-Encoding"
    return Response(body, media_type=asset.media_type, headers=headers)


@functools.cache
def assets_at(root: Path) -> Assets:
    """The UI's files under ``root``, read once per process: every app built in it (a test
    run builds hundreds) serves the same bytes, and shares their gzipped copies."""
    return Assets(root)


def web_router(settings: Settings, root: Path | None = None) -> APIRouter:
    """The UI's routes; none of them is in the OpenAPI document (they are not the API)."""
    assets = assets_at(root or web_root())
    token = settings.token.get_secret_value() if settings.token is not None else None
    cookie = web_credential(token) if token is not None else None
    router = APIRouter(include_in_schema=False)

    def login_page(request: Request, message: str, status: int, target: str) -> Response:
        body = (
            assets.page("login.html")
            .replace(b"%MESSAGE%", html.escape(message).encode())
            .replace(b"%NEXT%", html.escape(_local(target)).encode())
        )
        response = _response(request, assets.files["login.html"], "no-store", body)
        response.status_code = status
        return response

    def index(request: Request) -> Response:
        if token is not None and not authorized(request.scope, token):
            given = request.query_params.get("token")
            if given is not None and hmac.compare_digest(given.encode(), token.encode()):
                return _signed_in(request.url.path, cookie or "", request.url.scheme)
            message = "That token is not the server's." if given else ""
            return login_page(request, message, 401, request.url.path)
        # The editor (CodeMirror) writes its styles into one <style> element: it carries this
        # page's nonce, the only style the policy allows besides the stylesheet.
        nonce = secrets.token_urlsafe(18)
        page = assets.page("index.html").replace(b"%NONCE%", nonce.encode())
        response = _response(request, assets.files["index.html"], "no-cache", page)
        response.headers["Content-Security-Policy"] = CSP.replace("%STYLE%", f"'nonce-{nonce}'")
        return response

    for page in PAGES:
        router.add_api_route(page, index, methods=["GET", "HEAD"])

    @router.post("/login")
    def login(
        request: Request,
        given: Annotated[str, Form(alias="token")] = "",
        target: Annotated[str, Form(alias="next")] = "/",
    ) -> Response:
        if token is None:
            return RedirectResponse(_local(target), status_code=303)
        if not hmac.compare_digest(given.encode(), token.encode()):
            return login_page(request, "That token is not the server's.", 401, target)
        return _signed_in(target, cookie or "", request.url.scheme)

    @router.get("/ui/{build}/{file:path}")
    def asset(request: Request, build: str, file: str) -> Response:
        found = assets.files.get(file)
        if found is None or file.endswith(".html"):
            return Response(
                b'{"detail":"Not Found"}', status_code=404, media_type="application/json"
            )
        if token is not None and file not in PUBLIC and not authorized(request.scope, token):
            return Response(
                b'{"detail":"sign in first"}', status_code=401, media_type="application/json"
            )
        return _response(request, found, IMMUTABLE if build == assets.build else "no-cache")

    return router


def _local(target: str) -> str:
    """Only a path on this server (no ``//evil``, no scheme) is a place to go back to."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return quote(target, safe="/%?=&-._~")


def _signed_in(target: str, cookie: str, scheme: str) -> Response:
    response = RedirectResponse(_local(target), status_code=303)
    response.set_cookie(
        WEB_COOKIE,
        cookie,
        httponly=True,
        samesite="strict",
        secure=scheme == "https",
        path="/",
    )
    return response
