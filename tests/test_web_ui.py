"""The web UI (``web/``, served at ``/`` by ``quiver serve``), driven in a real Chromium.

One ``quiver serve`` and one browser for the module; each test opens its own notebook in its
own browser context. Every test also fails on a page error, a console error (a CSP violation
shows there) or a WebSocket ``error`` frame it did not expect.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.processes import start_quiver, stop

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TIMEOUT_MS = 20_000
"""Every wait's deadline: a notebook's first run starts its kernel, seconds on a busy machine
(Playwright's assertions would give up after 5 s)."""
expect.set_options(timeout=TIMEOUT_MS)
TABLE = "import pyarrow as pa\nt = pa.table({'n': range(250), 's': [str(i) for i in range(250)]})"
TABLE += "\nt"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("webui")
    proc, seen = start_quiver(
        ["serve", "--data-dir", str(tmp / "data"), "--notebook-root", str(tmp / "nb"),
         "--flight-port", "0", "--rest-port", "0"],
        tmp / "stderr",
    )  # fmt: skip
    try:
        yield seen["rest"]
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("no chromium (make test installs Debian's chromium with apt when it can)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


class Watch:
    """What went wrong in a page: page errors, console errors, WebSocket error frames."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.ws_errors: list[str] = []

    def attach(self, page: Any) -> Any:
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        # A CSP violation by a script (ours or the editor's) names its file. Chromium's own
        # editing, replacing a selection in the editor, tries a style attribute with none: the
        # policy blocks it and the edit is unaffected.
        page.add_init_script(
            "document.addEventListener('securitypolicyviolation', e => e.sourceFile && "
            "console.error('CSP violation', e.violatedDirective, e.sourceFile, e.lineNumber))"
        )
        page.on(
            "console",
            lambda m: (
                m.type == "error"
                and not m.text.startswith("Failed to load resource")  # a 4xx the test asked for
                and "Content Security Policy" not in m.text  # reported above when it is a script's
                and self.problems.append(f"console: {m.text}")
            ),
        )

        def socket(ws: Any) -> None:
            ws.on(
                "framereceived",
                lambda data: '"type":"error"' in str(data) and self.ws_errors.append(str(data)),
            )

        page.on("websocket", socket)
        return page


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def page(browser: Any, watch: Watch) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        yield watch.attach(context.new_page())
    finally:
        context.close()
    assert not watch.problems, watch.problems


def create_notebook(page: Any, server: str, name: str) -> None:
    page.goto(server + "/")
    page.get_by_test_id("new-name").fill(name)
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"/n/"))
    expect(page.get_by_test_id("connection")).to_have_text("Live")


def add_cell(page: Any, language: str, source: str) -> Any:
    """Add a cell at the end, type its source, wait until the server has it."""
    cells = page.get_by_test_id("cell")
    before = cells.count()
    page.get_by_test_id(f"add-{language}").click()
    expect(cells).to_have_count(before + 1)
    cell = cells.nth(before)
    editor = cell.locator(".cm-content")
    expect(editor).to_be_focused()
    page.keyboard.insert_text(source)
    expect(cell.locator(".save-state")).to_have_text("saved")
    return cell


def set_source(page: Any, cell: Any, source: str) -> None:
    cell.locator(".cm-content").click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.insert_text(source)
    expect(cell.locator(".save-state")).to_have_text("saved")


def status(cell: Any) -> Any:
    return cell.get_by_test_id("cell-status")


def test_create_three_cells_run_and_page_a_table(page: Any, server: str) -> None:
    create_notebook(page, server, "Tour")
    assert page.url.endswith("/n/tour")
    first = add_cell(page, "python", TABLE)
    second = add_cell(page, "python", "total = t.num_rows * 2\nprint('total is', total)\ntotal")
    third = add_cell(page, "sql", "select count(*) as c from t where n < 100")
    expect(second.locator(".chips.reads")).to_contain_text("t")
    expect(first.locator(".chips.defines")).to_contain_text("pa")

    page.get_by_role("button", name="Run all", exact=True).click()
    for cell in (first, second, third):
        expect(status(cell)).to_have_text("ready")
    expect(second.get_by_test_id("console")).to_contain_text("total is 500")
    expect(second.get_by_test_id("outputs")).to_contain_text("500")
    expect(third.get_by_test_id("outputs")).to_contain_text("100")

    grid = first.get_by_test_id("table-output")
    expect(grid.locator(".grid-status")).to_have_text("Rows 1–50 of 250")
    first_value = grid.locator("tbody tr").first.locator("td").nth(1)
    expect(first_value).to_have_text("0")
    grid.get_by_role("button", name="Next ›").click()
    expect(grid.locator(".grid-status")).to_have_text("Rows 51–100 of 250")
    expect(first_value).to_have_text("50")  # the second page, fetched from the server
    grid.get_by_role("button", name="Sort by n").click()
    grid.get_by_role("button", name="Sort by n").click()  # descending
    expect(first_value).to_have_text("249")
    grid.get_by_role("button", name="Schema").click()
    expect(grid.locator(".schema")).to_contain_text("int64")
    # Downloads: the current view (sorted) as CSV and Parquet, the whole output as Arrow.
    saved = {}
    for fmt in ("CSV", "Parquet", "Arrow"):
        with page.expect_download(timeout=TIMEOUT_MS) as download:
            grid.get_by_role("link", name=fmt).click()
        saved[fmt] = Path(download.value.path()).read_bytes()
    assert saved["CSV"].splitlines()[:2] == [b'"n","s"', b'249,"249"'], saved["CSV"][:40]
    assert saved["Parquet"][:4] == b"PAR1", saved["Parquet"][:8]
    assert pa.ipc.open_stream(saved["Arrow"]).read_all().num_rows == 250

    # The DAG panel shows the two edges, labelled by the variable they carry.
    page.get_by_test_id("tab-dag").click()
    expect(page.locator("svg.dag .edge-label")).to_have_count(2)
    expect(page.locator("svg.dag .edge-label").first).to_have_text("t")
    page.locator("svg.dag .node", has_text="sql_").click()


def test_stale_reason_cascade_and_reload(page: Any, server: str, watch: Watch) -> None:
    create_notebook(page, server, "Cascade")
    up = add_cell(page, "python", "x = 20")
    down = add_cell(page, "python", "y = x + 1\ny")
    down.get_by_role("button", name="Run cell").click()
    # x has never run: the server asks before running it too.
    prompt = page.get_by_test_id("cascade-prompt")
    expect(prompt).to_contain_text("This will also run 1 upstream cell")
    expect(prompt).to_contain_text("x")
    page.get_by_role("button", name="Run all 2").click()
    expect(down.get_by_test_id("outputs")).to_contain_text("21")
    expect(status(up)).to_have_text("ready")

    set_source(page, up, "x = 40")
    expect(status(down)).to_have_text("stale")
    expect(down.get_by_test_id("stale-reason")).to_contain_text("upstream cell x changed")

    down.locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")
    page.get_by_role("button", name="Run all 2").click()
    expect(down.get_by_test_id("outputs")).to_contain_text("41")
    expect(status(down)).to_have_text("ready")

    # A syntax error shows with its line, beside the cell.
    bad = add_cell(page, "python", "z = 1\ndef broken(:\n    pass")
    expect(bad.get_by_test_id("diagnostic")).to_contain_text("line 2")

    page.reload()
    cells = page.get_by_test_id("cell")
    expect(cells).to_have_count(3)
    expect(cells.nth(0)).to_contain_text("x = 40")
    expect(cells.nth(1).get_by_test_id("outputs")).to_contain_text("41")
    expect(status(cells.nth(1))).to_have_text("ready")
    expect(cells.nth(2).get_by_test_id("diagnostic")).to_contain_text("line 2")
    assert not watch.ws_errors, watch.ws_errors


def test_cancel_a_long_cell(page: Any, server: str, watch: Watch) -> None:
    create_notebook(page, server, "Cancel")
    long = (
        "import time\nfor i in range(600):\n    print('tick', i, flush=True)\n    time.sleep(0.05)"
    )
    cell = add_cell(page, "python", long)
    cell.get_by_role("button", name="Run cell").click()
    expect(status(cell)).to_have_text("running")
    expect(cell.get_by_test_id("console")).to_contain_text("tick 3")  # live, while it runs
    expect(status(cell)).to_have_text("running")
    cell.get_by_role("button", name="Cancel run").click()
    expect(status(cell)).to_have_text("idle")
    expect(cell.get_by_role("button", name="Run cell")).to_be_visible()
    # The kernel is still there: the next run works.
    set_source(page, cell, "'after cancel'")
    cell.get_by_role("button", name="Run cell").click()
    expect(cell.get_by_test_id("outputs")).to_contain_text("after cancel")


def test_two_pages_stay_in_sync(page: Any, browser: Any, server: str, watch: Watch) -> None:
    create_notebook(page, server, "Together")
    cell = add_cell(page, "python", "a = 1")
    other = watch.attach(browser.new_context(viewport={"width": 1280, "height": 800}).new_page())
    try:
        other.goto(page.url)
        expect(other.get_by_test_id("connection")).to_have_text("Live")
        mirror = other.get_by_test_id("cell").first
        expect(mirror).to_contain_text("a = 1")

        set_source(page, cell, "a = 'typed in the first tab'\na")
        expect(mirror.locator(".editor-host")).to_contain_text("typed in the first tab")
        cell.get_by_role("button", name="Run cell").click()
        expect(status(mirror)).to_have_text("ready")
        expect(mirror.get_by_test_id("outputs")).to_contain_text("typed in the first tab")

        other.get_by_test_id("add-markdown").click()
        expect(page.get_by_test_id("cell")).to_have_count(2)
    finally:
        other.context.close()


def menu(cell: Any, action: str) -> None:
    cell.get_by_label("More actions").click()
    cell.get_by_role("menuitem", name=action).click()


def test_cells_warn_undo_reorder_delete_and_rename(page: Any, server: str, watch: Watch) -> None:
    create_notebook(page, server, "Shapes")
    cells = page.get_by_test_id("cell")
    add_cell(page, "python", "items = [1, 2]")
    mutate = add_cell(page, "python", "items.append(3)")
    shadow = add_cell(page, "python", "items = [0]")
    expect(mutate.get_by_test_id("diagnostic")).to_contain_text("mutates upstream variable 'items'")
    expect(shadow.get_by_test_id("diagnostic")).to_contain_text("redefines the variable")

    # Reorder by keys (Alt+Up) and by dragging a cell's handle above the first cell.
    shadow.locator(".cm-content").click()
    page.keyboard.press("Alt+ArrowUp")
    expect(cells.nth(1)).to_contain_text("items = [0]")
    cells.nth(2).locator(".handle").drag_to(cells.nth(0), target_position={"x": 40, "y": 4})
    expect(cells.nth(0)).to_contain_text("items.append(3)")
    expect(cells.nth(1)).to_contain_text("items = [1, 2]")

    # Force runs the cell alone (no cascade prompt): its upstream never ran, so it fails.
    menu(cells.nth(0), "Force (no upstream runs)")
    expect(cells.nth(0).locator(".output.error")).to_contain_text("NameError")
    expect(page.get_by_test_id("cascade-prompt")).to_have_count(0)
    menu(cells.nth(1), "Rerun (ignore the cache)")
    expect(status(cells.nth(1))).to_have_text("ready")

    menu(cells.nth(2), "Delete cell")  # the last cell: its menu reaches past it
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(cells).to_have_count(2)

    note = add_cell(page, "markdown", "# Findings\n\nSome *text*")
    note.get_by_role("button", name="Done").click()
    expect(note.locator(".md-rendered h1")).to_have_text("Findings")
    add_cell(page, "prompt", "Summarise items")
    expect(cells.nth(3).locator(".lang")).to_have_text("Prompt")

    page.get_by_role("button", name="Shapes").click()  # the name: click to rename
    page.get_by_label("Notebook name").fill("Shapes, renamed")
    page.get_by_role("button", name="Rename").click()
    expect(page.locator("h1.nb-name")).to_have_text("Shapes, renamed")

    page.reload()
    expect(page.locator("h1.nb-name")).to_have_text("Shapes, renamed")
    expect(cells).to_have_count(4)
    expect(cells.nth(0)).to_contain_text("items.append(3)")
    expect(cells.nth(2).locator(".md-rendered h1")).to_have_text("Findings")

    # Undo in the editor (a fresh one: its history starts at the loaded source), then
    # Ctrl/Cmd+S saves at once what the editor holds.
    editor = cells.nth(1).locator(".cm-content")
    editor.click()
    page.keyboard.press("End")
    page.keyboard.insert_text("  # a note")
    expect(editor).to_contain_text("# a note")
    page.keyboard.press("ControlOrMeta+z")
    expect(editor).to_have_text("items = [1, 2]")
    page.keyboard.press("ControlOrMeta+s")
    expect(cells.nth(1).locator(".save-state")).to_have_text("saved")

    page.get_by_role("link", name="Notebooks").click()
    row = page.get_by_test_id("notebook-row").filter(has_text="Shapes, renamed")
    row.get_by_role("button", name="Delete Shapes, renamed").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    page.reload()
    expect(page.get_by_test_id("notebook-list")).not_to_contain_text("Loading")
    expect(row).to_have_count(0)


def test_server_errors_reach_the_user(page: Any, server: str) -> None:
    create_notebook(page, server, "Errors")
    page.goto(server + "/")
    page.get_by_test_id("new-name").fill("Errors")
    page.get_by_role("button", name="Create").click()
    expect(page.locator(".toast.error")).to_contain_text("already exists")

    page.goto(server + "/n/no/such/notebook")
    expect(page.get_by_role("alert")).to_contain_text("not found")

    page.goto(server + "/n/errors")
    cell = add_cell(page, "python", "raise ValueError('bad input')")
    cell.get_by_role("button", name="Run cell").click()
    error = cell.locator(".output.error")
    expect(error).to_contain_text("ValueError: bad input")
    expect(error.locator(".traceback")).to_contain_text("line 1")


def test_home_lists_and_artifacts_page(page: Any, server: str) -> None:
    create_notebook(page, server, "Listed")
    cell = add_cell(page, "python", TABLE)
    cell.get_by_role("button", name="Run cell").click()
    expect(status(cell)).to_have_text("ready")
    page.get_by_role("link", name="Notebooks").click()
    expect(page.get_by_test_id("notebook-row").filter(has_text="Listed")).to_be_visible()

    page.get_by_role("link", name="Logs").click()
    expect(page.get_by_role("heading", name="Logs")).to_be_visible()
    page.get_by_role("link", name="Artifacts").click()
    rows = page.get_by_test_id("artifact-list").locator("tbody tr")
    expect(rows.first).to_be_visible()
    page.get_by_test_id("artifact-list").get_by_text("250", exact=True).first.locator(
        "xpath=ancestor::tr"
    ).get_by_role("link").first.click()
    expect(page.get_by_role("heading", name="Schema")).to_be_visible()
    expect(page.get_by_test_id("artifact-preview").locator("tbody tr")).to_have_count(20)
    expect(page.get_by_role("heading", name="Lineage")).to_be_visible()
    with page.expect_download(timeout=TIMEOUT_MS) as download:
        page.locator(".downloads").get_by_role("link", name="Parquet").click()
    assert pq.read_table(download.value.path()).num_rows == 250


def test_narrow_window(browser: Any, server: str, watch: Watch) -> None:
    context = browser.new_context(viewport={"width": 420, "height": 800})
    try:
        page = watch.attach(context.new_page())
        create_notebook(page, server, "Narrow")
        cell = add_cell(page, "python", "'fits'")
        page.keyboard.press("Shift+Enter")
        expect(cell.get_by_test_id("outputs")).to_contain_text("fits")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 420, f"the page scrolls sideways: {width}px wide"
        page.get_by_role("button", name="Panels").click()
        expect(page.get_by_test_id("tab-dag")).to_be_visible()
    finally:
        context.close()
    assert not watch.problems, watch.problems
