"""Notebook figures (issue 5), with pytest-benchmark.

Editing one cell of a 200-cell notebook through REST: the response carries
the cell, the DAG and every cell with its staleness. Run with ``make bench``;
``bench/side_by_side.py notebooks`` prints the p50 against the target.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from foundation import Settings
from notebooks import NotebookManager
from rest.app import create_app
from rest.notebooks import notebook_router
from tests.servers import serving

CELLS = 200


def _frame_before(i: int) -> str:
    """The nearest earlier cell that defines a frame ``v<j>``, so edits ripple far."""
    j = i - 1
    while j > 0 and j % 10 in (5, 7, 9):
        j -= 1
    return f"v{j}" if j > 0 else "base"


def cell_source(i: int) -> tuple[str, str]:
    """A realistic mix: imports, a chain of frames, SQL over them, markdown, helpers."""
    if i == 0:
        return "python", "import math\nimport pyarrow as pa\nbase = pa.table({'x': [1, 2, 3]})"
    prev = _frame_before(i)
    if i % 10 == 5:
        return "sql", f"-- @name q{i}\nselect x, x * 2 as y from {prev} where x > {i}"
    if i % 10 == 7:
        return "markdown", f"## Step {i}\nWhat `{prev}` holds."
    if i % 10 == 9:
        return "python", f"def helper{i}(t):\n    return t.num_rows + len({prev}) + math.pi"
    return "python", (
        f"v{i} = {prev}.append_column('c{i}', pa.array([{i}] * {prev}.num_rows))\n"
        f"total{i} = sum(v{i}.column(0).to_pylist())\n"
        f"items{i} = [r for r in range(total{i}) if r % 2]"
    )


def build_notebook(settings: Settings) -> tuple[NotebookManager, str, list[str]]:
    manager = NotebookManager(settings, python_versions={"3.11": Path(sys.executable)})
    session = manager.create(".", "bench", "3.11", False)
    ids = []
    for i in range(CELLS):
        language, source = cell_source(i)
        cid = session.add_cell(language).id
        session.update_source(cid, source)
        ids.append(cid)
    for cid in session.derived.dag.topological_order:
        session.record_run(cid)  # every cell ran once: edits make real stale reasons
    return manager, session.id, ids


@contextmanager
def serve(manager: NotebookManager, settings: Settings) -> Iterator[str]:
    with serving(create_app([notebook_router(manager, settings)])) as url:
        yield url


EDITED = 100


class Editor:
    """Flips cell 100 between the source it last ran with and an edit of it.

    The worst case for an edit: every flip turns the cell and its ~100
    downstream cells from ready to stale or back, so their staleness, reasons
    and JSON all change.
    """

    def __init__(self, client: httpx.Client, sid: str, cid: str) -> None:
        self.client = client
        self.url = f"/v1/notebooks/{sid}/cells/{cid}"
        self.flip = False
        self.original = cell_source(EDITED)[1]

    def __call__(self) -> httpx.Response:
        """One edit; returns when the whole response body has arrived (not decoded)."""
        self.flip = not self.flip
        source = self.original + "\nbonus = 1" if self.flip else self.original
        r = self.client.put(self.url, json={"source": source})
        r.raise_for_status()
        return r


@contextmanager
def edit_setup(root: Path) -> Iterator[tuple[Editor, httpx.Client]]:
    settings = Settings(data_dir=root / "data", notebook_root=root / "notebooks")
    manager, sid, ids = build_notebook(settings)
    with serve(manager, settings) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield Editor(client, sid, ids[EDITED]), client


def p50_ms(fn: object, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2] * 1000


@pytest.fixture(scope="module")
def editor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Editor, httpx.Client]]:
    with edit_setup(tmp_path_factory.mktemp("bench-notebooks")) as pair:
        yield pair


def test_rest_round_trip_baseline(benchmark, editor) -> None:
    _, client = editor
    r = benchmark(client.get, "/health")
    assert r.status_code == 200


def test_update_cell_in_200_cell_notebook(benchmark, editor) -> None:
    edit, _ = editor
    benchmark(edit)
    if not edit.flip:
        edit()  # look at the edited state
    body = edit.client.get(edit.url.rsplit("/", 2)[0] + "/dag").json()
    assert body["topological_order"]
    cells = edit.client.get(edit.url.rsplit("/", 1)[0]).json()["cells"]
    assert len(cells) == CELLS
    stale = [c for c in cells if c["status"] == "stale"]
    assert len(stale) > 50 and all(c["staleness_reasons"] for c in stale)
