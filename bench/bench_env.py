"""Issue 15's figures: notebook environments on uv, with no network.

A ``quiver serve`` process of its own per measurement, whose uv resolves only from a
folder of tiny wheels (``UV_FIND_LINKS``, ``UV_OFFLINE``, ``UV_NO_INDEX``) with a uv
cache of its own: empty at the server's start ("empty cache"), or already holding
what the step needs ("warm"). Notebooks declare no packages (the defaults need an
index to lock; see docs/environments.md).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.common import quiver_serve
from tests.wheels import make_wheel


@contextlib.contextmanager
def env_server(root: Path) -> Iterator[tuple[httpx.Client, int]]:
    """A server whose uv is offline, with an empty cache under ``root``: a client, its pid."""
    wheels = root / "wheels"
    for i in range(3):
        make_wheel(wheels, f"benchpkg{i}", "1.0")
    saved = dict(os.environ)
    os.environ.update(UV_FIND_LINKS=str(wheels), UV_OFFLINE="1", UV_NO_INDEX="1",
                      UV_CACHE_DIR=str(root / "uv-cache"))  # fmt: skip
    try:
        with contextlib.ExitStack() as stack:
            proc, seen = stack.enter_context(quiver_serve(root))
            client = stack.enter_context(httpx.Client(base_url=seen["rest"], timeout=120))
            yield client, proc.pid
    finally:
        os.environ.clear()
        os.environ.update(saved)


def new_notebook(client: httpx.Client, name: str) -> tuple[str, Path]:
    r = client.post("/v1/notebooks/create", json={"parent_path": ".", "name": name})
    r.raise_for_status()
    body = r.json()
    path = Path(body["path"])
    pyproject = path / "pyproject.toml"
    text = pyproject.read_text()
    start = text.index("dependencies = [")
    pyproject.write_text(text[:start] + "dependencies = []" + text[text.index("]", start) + 1 :])
    return body["session_id"], path


def run_cell(client: httpx.Client, sid: str, source: str) -> dict[str, Any]:
    cid = client.post(f"/v1/notebooks/{sid}/cells", json={"language": "python"}).json()["id"]
    client.put(f"/v1/notebooks/{sid}/cells/{cid}", json={"source": source}).raise_for_status()
    r = client.post(f"/v1/notebooks/{sid}/cells/{cid}/execute")
    r.raise_for_status()
    out = r.json()
    assert out["status"] == "ready", out
    return out


def first_cell_s(client: httpx.Client, name: str) -> float:
    """Create a notebook, run its first cell: seconds to the result."""
    t = time.perf_counter()
    sid, _ = new_notebook(client, name)
    run_cell(client, sid, "x = 1")
    return time.perf_counter() - t


def add_then_import_s(client: httpx.Client, sid: str, package: str) -> float:
    """Add ``package`` and run a cell importing it: seconds."""
    t = time.perf_counter()
    r = client.post(f"/v1/notebooks/{sid}/dependencies", json={"package": package})
    r.raise_for_status()
    run_cell(client, sid, f"import {package}\nv = {package}.VERSION")
    return time.perf_counter() - t


def tree_rss_mib(pid: int) -> float:
    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total / 2**20


def python_start_s() -> float:
    """The floor of a kernel: a fresh interpreter importing pyarrow."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import pyarrow"], check=True)
    return time.perf_counter() - t


def figures(root: Path, many: int = 20) -> dict[str, float]:
    out: dict[str, float] = {}
    with env_server(root / "a") as (client, _):
        out["first_empty"] = first_cell_s(client, "first")  # nothing in uv's cache yet
        out["first_warm"] = first_cell_s(client, "second")
        sid, _ = new_notebook(client, "adder")
        run_cell(client, sid, "x = 1")  # a warm kernel, as a user has
        out["add_empty"] = add_then_import_s(client, sid, "benchpkg0")
        sid2, _ = new_notebook(client, "adder2")
        run_cell(client, sid2, "x = 1")
        out["add_warm"] = add_then_import_s(client, sid2, "benchpkg0")  # wheel in the cache
    with env_server(root / "b") as (client, pid):
        before = tree_rss_mib(pid)
        t = time.perf_counter()
        for i in range(many):
            sid, _ = new_notebook(client, f"many{i}")
            run_cell(client, sid, "x = 1")
        out["many_s"] = time.perf_counter() - t
        out["many_mib_per_nb"] = (tree_rss_mib(pid) - before) / many
    out["python_start"] = python_start_s()
    return out
