"""Strata 0.11's own browser client against ``quiver serve``, end to end, in Chromium.

The client's built files come from the ``strata-notebook`` wheel (``strata/_frontend``,
downloaded by ``make wheels``); Playwright serves them by request routing on the
server's own origin, and everything under ``/v1`` and the WebSocket goes to Quiver
unchanged. A user creates a notebook, types a cell, runs it with Shift+Enter and
sees its value, pages through a table output, and reloads the page.
"""

from __future__ import annotations

import json
import mimetypes
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.processes import start_quiver, stop

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT / ".venv" / "wheels"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TIMEOUT_MS = 30_000
KNOWN_MISSING = ("/v1/admin/",)  # server administration pages Quiver does not have


@pytest.fixture(scope="module")
def frontend(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = sorted(WHEELS.glob("strata_notebook-0.11*.whl"))
    if not wheels:
        pytest.skip(f"no strata-notebook 0.11 wheel in {WHEELS} (make wheels downloads it)")
    if not Path(CHROMIUM).exists():
        pytest.skip("no chromium (make test installs Debian's chromium with apt when it can)")
    out = tmp_path_factory.mktemp("frontend")
    with zipfile.ZipFile(wheels[-1]) as whl:
        for name in whl.namelist():
            if name.startswith("strata/_frontend/") and not name.endswith("/"):
                target = out / name.removeprefix("strata/_frontend/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(whl.read(name))
    return out


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    proc, seen = start_quiver(
        ["serve", "--data-dir", str(tmp_path / "data"), "--notebook-root", str(tmp_path / "nb"),
         "--flight-port", "0", "--rest-port", "0"],
        tmp_path / "stderr",
    )  # fmt: skip
    try:
        yield seen["rest"]
    finally:
        stop(proc)


def test_strata_client_create_type_run_page_reload(frontend: Path, server: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    failures: list[str] = []
    ws_errors: list[dict[str, Any]] = []
    seen: list[str] = []  # what the page asked and heard, for a failure's message

    def serve_files(route: Any) -> None:
        url = route.request.url
        if not url.startswith(server):
            route.abort()  # no network: web fonts and the like
            return
        path = url[len(server) :].split("?", 1)[0].split("#", 1)[0]
        if path.startswith(("/v1/", "/health")):
            route.continue_()
            return
        file = frontend / path.lstrip("/")
        if not file.is_file():
            file = frontend / "index.html"  # the client's own routes
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        route.fulfill(status=200, body=file.read_bytes(), content_type=kind)

    def watch_socket(ws: Any) -> None:
        def received(payload: str | bytes) -> None:
            frame = json.loads(payload)
            if frame.get("type") == "error":
                ws_errors.append(frame["payload"])

        ws.on("framereceived", received)

    def watch_response(response: Any) -> None:
        path = response.url[len(server) :]
        known = path.startswith(KNOWN_MISSING)
        if path.startswith("/v1/") and response.status >= 400 and not known:
            failures.append(f"{response.status} {response.request.method} {path}")
        if path.startswith("/v1/"):
            seen.append(f"{response.status} {response.request.method} {path}")

    def watch_failed(request: Any) -> None:
        seen.append(f"failed {request.method} {request.url}: {request.failure}")

    def watch_console(message: Any) -> None:
        if message.type in ("error", "warning"):
            seen.append(f"console {message.type}: {message.text}")

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-features=LocalNetworkAccessChecks"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.route("**/*", serve_files)
            page.on("websocket", watch_socket)
            page.on("response", watch_response)
            page.on("requestfailed", watch_failed)
            page.on("console", watch_console)
            expect = sync_api.expect

            try:
                # The home page reads the runtime config as it mounts; what it creates goes
                # where that says, so act once it has arrived, as a person would see it.
                with page.expect_response(lambda r: r.url.endswith("/v1/notebooks/config")):
                    page.goto(server + "/")
                page.get_by_test_id("action-new-notebook").click()
                page.get_by_test_id("new-notebook-name").fill("Browser Tour")
                page.get_by_test_id("create-notebook-submit").click()
                page.get_by_test_id("notebook-page").wait_for()
                expect(page.get_by_text("Live", exact=False).first).to_be_visible()

                page.get_by_role("button", name="Python", exact=True).click()
                cells = page.get_by_test_id("notebook-cell")
                expect(cells).to_have_count(1)
                cells.nth(0).locator(".cm-content").click()
                page.keyboard.type("x = 41 + 1\nx")
                page.keyboard.press("Shift+Enter")
                expect(cells.nth(0)).to_contain_text("42")

                page.get_by_test_id("notebook-add-cell").click()
                page.get_by_test_id("add-cell-option-python").click()
                expect(cells).to_have_count(2)
                cells.nth(1).locator(".cm-content").click()
                page.keyboard.insert_text("import pyarrow as pa\npa.table({'n': list(range(250))})")
                page.keyboard.press("Shift+Enter")
                table = cells.nth(1)
                pager = table.locator(".pager")
                expect(pager).to_be_visible()
                first_cell = table.locator("tbody tr").first.locator("td").last
                expect(first_cell).to_have_text("0")
                pager.get_by_role("button", name="Next ›").click()
                expect(first_cell).to_have_text("50")  # the second page, from the server
                pager.get_by_role("button", name="Next ›").click()
                expect(first_cell).to_have_text("100")
                pager.get_by_role("button", name="‹ Prev").click()
                expect(first_cell).to_have_text("50")

                page.reload()
                page.get_by_test_id("notebook-page").wait_for()
                expect(cells).to_have_count(2)
                expect(cells.nth(0)).to_contain_text("x = 41 + 1")
                expect(cells.nth(0)).to_contain_text("42")
            except sync_api.Error as e:  # say what the page saw, not only what it missed
                trail = "\n".join(seen[-30:])
                raise AssertionError(f"{e.message}\nat {page.url}\nlast seen:\n{trail}") from e
        finally:
            browser.close()
    assert not failures, failures
    assert not ws_errors, ws_errors
