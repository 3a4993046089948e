"""How ``rest/web.py`` serves the web UI: pages, assets, caching, the CSP, the sign-in cookie."""

from __future__ import annotations

import asyncio
import posixpath
import re
from pathlib import Path

import httpx
import pytest
import websockets

from rest.middleware import WEB_COOKIE
from rest.web import web_root

# The UI's files do not depend on how REST reaches Flight: one transport is enough.
one_transport = pytest.mark.parametrize("make_rest", ["in-process"], indirect=True)


def asset_prefix(html: str) -> str:
    found = re.search(r'src="(/ui/[0-9a-f]{12}/)app\.js"', html)
    assert found, html
    return found.group(1)


@one_transport
def test_pages_answer_the_app_with_a_strict_policy(rest) -> None:
    http = rest.http
    for path in ("/", "/n/some/notebook", "/artifacts", "/artifacts/abc/2", "/logs"):
        res = http.get(path)
        assert res.status_code == 200, path
        assert res.headers["content-type"] == "text/html; charset=utf-8"
        assert res.headers["cache-control"] == "no-cache"
        assert res.headers["x-content-type-options"] == "nosniff"
        policy = res.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "default-src 'none'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
        assert f'content="{nonce}"' in res.text  # the editor's styles carry it
        assert 'rel="modulepreload"' in res.text and "vendor/" not in res.text.split("<body")[0]
    assert http.head("/").status_code == 200
    assert http.get("/").headers["content-security-policy"] != policy  # a nonce per page
    assert http.get("/nothing-here").status_code == 404
    assert not [
        p
        for p in http.get("/openapi.json").json()["paths"]
        if not p.startswith(("/v1", "/health", "/metrics"))
    ]


@one_transport
def test_assets_are_typed_immutable_and_compressed(rest) -> None:
    http = rest.http
    prefix = asset_prefix(http.get("/").text)
    res = http.get(prefix + "app.js", headers={"Accept-Encoding": "gzip"})
    assert res.status_code == 200
    assert res.headers["content-type"] == "text/javascript; charset=utf-8"
    assert res.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert res.headers["content-encoding"] == "gzip"
    assert "import" in res.text
    again = http.get(prefix + "app.js", headers={"If-None-Match": res.headers["etag"]})
    assert again.status_code == 304
    assert http.get(prefix + "style.css").headers["content-type"] == "text/css; charset=utf-8"
    assert http.get(prefix + "icon.svg").headers["content-type"] == "image/svg+xml"
    assert http.get(prefix + "vendor/codemirror.js").status_code == 200
    # An old build's URL still answers, but is not cached as if it were this build.
    assert http.get("/ui/000000000000/app.js").headers["cache-control"] == "no-cache"
    for bad in ("vendor/build.sh", "vendor/package.json", "index.html", "../rest/web.py",
                "%2e%2e/rest/web.py", "__init__.py", "missing.js"):  # fmt: skip
        assert http.get(prefix + bad).status_code == 404, bad


@one_transport
def test_every_module_a_page_imports_is_served(rest) -> None:
    """A typo in an import path breaks the page: follow every import from app.js."""
    prefix = asset_prefix(rest.http.get("/").text)
    root = web_root()
    seen: set[str] = set()
    todo = ["app.js"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        res = rest.http.get(prefix + name)
        assert res.status_code == 200, name
        if name.startswith("vendor/"):
            continue
        for target in re.findall(r'(?:from|import)\s*\(?\s*"(\.{1,2}/[^"]+)"', res.text):
            todo.append(posixpath.normpath(posixpath.join(posixpath.dirname(name), target)))
            resolved = (root / Path(name).parent / target).resolve()
            assert resolved.is_file(), f"{name} imports {target}"
    assert {"notebook.js", "panels.js", "panels/dag.js", "vendor/codemirror.js"} <= seen


def test_vendored_editor_records_its_versions_and_licences() -> None:
    vendor = web_root() / "vendor"
    pins = (vendor / "package.json").read_text()
    licences = (vendor / "LICENSES.txt").read_text()
    banner = (vendor / "codemirror.js").read_text()[:400]
    for name, version in re.findall(r'"(@codemirror/[a-z-]+|@lezer/[a-z-]+)": "([\d.]+)"', pins):
        assert f"{name}@{version}" in licences, name
        assert f"{name}@{version}" in banner, name
    assert "MIT" in licences


@one_transport
def test_a_token_guards_the_pages_and_the_cookie_stands_in_for_it(make_rest) -> None:
    rest = make_rest(token="s3cret")
    http = httpx.Client(base_url=rest.url, timeout=30, follow_redirects=False)
    page = http.get("/n/nb")
    assert page.status_code == 401 and 'action="/login"' in page.text and "<script" not in page.text
    assert 'value="/n/nb"' in page.text
    prefix = asset_prefix(_index(rest))
    assert http.get(prefix + "app.js").status_code == 401
    assert http.get(prefix + "style.css").status_code == 200  # the sign-in page's own look

    wrong = http.post("/login", data={"token": "nope", "next": "/n/nb"})
    assert wrong.status_code == 401 and "not the server" in wrong.text
    signed = http.post("/login", data={"token": "s3cret", "next": "/n/nb"})
    assert signed.status_code == 303 and signed.headers["location"] == "/n/nb"
    cookie = signed.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    value = signed.cookies[WEB_COOKIE]
    http.cookies.clear()  # each request below says what it carries
    assert value and "s3cret" not in value  # derived: no bearer token elsewhere

    jar = {"Cookie": f"{WEB_COOKIE}={value}"}
    origin = {"Origin": rest.url}
    assert http.get("/n/nb", headers=jar).status_code == 200
    assert http.get(prefix + "app.js", headers=jar).status_code == 200
    assert http.get("/v1/names", headers=jar).status_code == 200
    assert http.get("/v1/names", headers=jar | origin).status_code == 200
    # A write needs the page's own origin: another site (or another port) cannot ride it.
    create = {"parent_path": "", "name": "x"}
    assert http.post("/v1/notebooks/create", json=create, headers=jar).status_code == 401
    foreign = {"Origin": "http://127.0.0.1:1"}
    assert http.post("/v1/notebooks/create", json=create, headers=jar | foreign).status_code == 401
    assert http.get("/v1/names", headers=jar | foreign).status_code == 401
    assert http.get("/v1/names", headers={"Cookie": f"{WEB_COOKIE}=forged"}).status_code == 401
    assert http.post("/v1/notebooks/create", json=create, headers=jar | origin).status_code == 200

    link = http.get("/", params={"token": "s3cret"})
    assert link.status_code == 303 and link.headers["location"] == "/"
    assert link.cookies[WEB_COOKIE] == value
    http.cookies.clear()
    assert http.get("/", params={"token": "bad"}).status_code == 401
    away = http.post("/login", data={"token": "s3cret", "next": "//evil.example/x"})
    assert away.headers["location"] == "/"

    session = http.post(
        "/v1/notebooks/create", json={"parent_path": "", "name": "y"}, headers=jar | origin
    ).json()["session_id"]
    ws_url = rest.url.replace("http", "ws") + "/v1/notebooks/ws/" + session

    async def opens(headers: dict[str, str]) -> bool:
        try:
            async with websockets.connect(ws_url, additional_headers=headers):
                return True
        except websockets.InvalidStatus as refused:
            assert refused.response.status_code == 403  # closed before the handshake
            return False

    assert asyncio.run(opens(jar | origin))
    assert not asyncio.run(opens(jar | foreign))
    assert not asyncio.run(opens(jar))  # a browser always names the origin of a socket
    http.close()


def _index(rest) -> str:
    """The page as a signed-in browser gets it (its asset links name the build)."""
    return httpx.get(rest.url + "/", headers={"Authorization": "Bearer s3cret"}).text
