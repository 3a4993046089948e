"""The web UI's figures, measured in a real Chromium against a ``quiver serve`` of its own.

- First paint of a 200-cell notebook: from the start of the page load (navigation) to the
  first frame painted with every cell in it (the UI's ``quiver:notebook-shown`` mark), with
  the HTTP cache warm, in a new tab (the notebook opened by path: the server reads it again
  from disk) and reloaded in the same tab. Baseline, same run: a 1-cell notebook.
- The save round trip while typing: from an edit sent over the WebSocket to its
  ``dag_update`` handled by the page (the UI's ``quiver:save`` measures), typing into cell
  100 of the 200, whose edit flips ~90 downstream cells. Baseline, same run: the socket's
  bare round trip (``cell_focus`` → ``presence``) from the same page.

``bench/side_by_side.py web`` prints them.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.bench_notebooks import CELLS, EDITED, cell_source
from bench.common import quiver_serve

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

SHOWN = """() => new Promise((resolve) => {
  const look = () => {
    const m = performance.getEntriesByName("quiver:notebook-shown")[0];
    if (m) resolve(m.startTime); else setTimeout(look, 5);
  };
  look();
})"""

BARE_ROUND_TRIP = """async ([sid, cell, rounds]) => {
  const ws = new WebSocket(`ws://${location.host}/v1/notebooks/ws/${sid}`);
  await new Promise((ok) => (ws.onopen = ok));
  const times = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    const got = new Promise((ok) => {
      ws.onmessage = (ev) => JSON.parse(ev.data).type === "presence" && ok();
    });
    ws.send(JSON.stringify({ type: "cell_focus", payload: { cell_id: i % 2 ? cell : null } }));
    await got;
    times.push(performance.now() - t0);
  }
  ws.close();
  return times;
}"""


@dataclass
class WebBench:
    url: str
    big: str
    """URL of the 200-cell notebook's page."""
    small: str
    session: str
    edited: str
    """Id of cell 100 of the big notebook."""
    browser: Any


def _notebook(http: httpx.Client, name: str, sources: list[tuple[str, str]]) -> tuple[str, list]:
    nb = http.post("/v1/notebooks/create", json={"parent_path": ".", "name": name}).json()
    base = f"/v1/notebooks/{nb['session_id']}"
    ids = []
    for language, source in sources:
        cid = http.post(f"{base}/cells", json={"language": language}).json()["id"]
        http.put(f"{base}/cells/{cid}", json={"source": source}).raise_for_status()
        ids.append(cid)
    for cid in http.get(f"{base}/dag").json()["topological_order"]:
        assert http.post(f"{base}/cells/{cid}/execute").json()["status"] == "ready", cid
    return nb["session_id"], ids


def _source(i: int) -> tuple[str, str]:
    """bench_notebooks' 200-cell mix; every tenth frame cell also shows its table."""
    language, source = cell_source(i)
    if language == "python" and i % 10 == 0 and i:
        source += f"\nv{i}"
    return language, source


@contextlib.contextmanager
def web_setup(root: Path) -> Iterator[WebBench]:
    from playwright.sync_api import sync_playwright

    with quiver_serve(root) as (_, seen), httpx.Client(base_url=seen["rest"], timeout=300) as http:
        session, ids = _notebook(http, "big", [_source(i) for i in range(CELLS)])
        _notebook(http, "small", [("python", "x = 1\nx")])
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                url = seen["rest"]
                yield WebBench(url, f"{url}/n/big", f"{url}/n/small", session, ids[EDITED], browser)
            finally:
                browser.close()


def first_paints(b: WebBench, url: str, rounds: int, *, reload: bool = False) -> list[float]:
    """ms from navigation start to the first frame with every cell, the HTTP cache warm: each
    round in a new tab (the notebook opened by path, read again from disk), or ``reload``-ed
    in the same tab (its live session asked for again)."""
    context = b.browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.goto(url)
        page.evaluate(SHOWN)  # the first visit fills the cache
        times = []
        for _ in range(rounds):
            if reload:
                page.reload()
            else:
                page.close()
                page = context.new_page()
                page.goto(url)
            times.append(page.evaluate(SHOWN))
        return times
    finally:
        context.close()


def save_round_trips(b: WebBench, rounds: int) -> tuple[list[float], list[float]]:
    """(the UI's save round trips while typing into cell 100, the socket's bare round trips)."""
    context = b.browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(b.big)
        page.evaluate(SHOWN)
        cell = page.locator(f"#cell-{b.edited}")
        cell.scroll_into_view_if_needed()
        cell.locator(".cm-content").click()
        page.keyboard.press("ControlOrMeta+End")
        for i in range(rounds):  # a keystroke, then the pause that lets the save go out
            page.keyboard.press("#" if i % 2 == 0 else "Backspace")
            page.wait_for_function(
                "n => performance.getEntriesByName('quiver:save').length >= n", arg=i + 1
            )
        ours = page.evaluate(
            "() => performance.getEntriesByName('quiver:save').map((m) => m.duration)"
        )
        bare = page.evaluate(BARE_ROUND_TRIP, [b.session, b.edited, rounds])
        return ours, bare
    finally:
        context.close()


def p50(values: list[float]) -> float:
    return statistics.median(values)
