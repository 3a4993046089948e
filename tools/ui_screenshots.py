"""Re-create the web UI's screenshots in docs/ui/ (``make ui-screenshots``).

Starts a ``quiver serve`` of its own in a temporary directory, builds a small demo notebook
through the REST API, and photographs the main views in Debian's Chromium at 1280×800 (and
one narrow window). The PNGs are reduced to a small palette so they stay small in the repo.
"""

from __future__ import annotations

import io
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import quiver_serve  # noqa: E402

OUT = ROOT / "docs" / "ui"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

CELLS = [
    ("markdown", "# Sales by region\nA table made in Python, a summary in **SQL**, a chart."),
    (
        "python",
        "import random\nimport pyarrow as pa\n\nrandom.seed(7)\n"
        'regions = ["north", "south", "east", "west"]\n'
        "sales = pa.table({\n"
        '    "day": [d for d in range(1, 366) for _ in regions],\n'
        '    "region": regions * 365,\n'
        '    "amount": [round(random.uniform(50, 500), 2) for _ in range(365 * 4)],\n'
        "})\nsales",
    ),
    (
        "sql",
        "-- @name by_region\nselect region, count(*) as days, round(sum(amount), 2) as total\n"
        "from sales group by region order by total desc",
    ),
    (
        "python",
        'import matplotlib\nmatplotlib.use("Agg")\nimport matplotlib.pyplot as plt\n\n'
        "rows = by_region.to_pylist()\nfig, ax = plt.subplots(figsize=(5, 2.2))\n"
        'ax.bar([r["region"] for r in rows], [r["total"] for r in rows], color="#24527a")\n'
        'ax.set_ylabel("total")\nfig.tight_layout()\nfig',
    ),
    ("python", 'best = by_region.to_pylist()[0]\nprint("best region:", best["region"])\nbest'),
]


def save(png: bytes, name: str) -> None:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    small = image.quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    small.save(OUT / name, optimize=True)
    print(f"docs/ui/{name}: {(OUT / name).stat().st_size // 1024} kB")


def build(http: httpx.Client) -> tuple[str, list[str]]:
    for name in ("Churn model", "Daily events"):
        http.post("/v1/notebooks/create", json={"parent_path": ".", "name": name})
    nb = http.post("/v1/notebooks/create", json={"parent_path": ".", "name": "Sales"}).json()
    base = f"/v1/notebooks/{nb['session_id']}"
    ids = []
    for language, source in CELLS:
        cid = http.post(f"{base}/cells", json={"language": language}).json()["id"]
        http.put(f"{base}/cells/{cid}", json={"source": source}).raise_for_status()
        ids.append(cid)
    for cid in ids:
        result = http.post(f"{base}/cells/{cid}/execute").json()
        assert result["status"] == "ready", result
    return base, ids


def shoot(page: Any, url: str, base: str, ids: list[str], http: httpx.Client) -> None:
    page.goto(url + "/")
    page.get_by_test_id("notebook-row").first.wait_for()
    save(page.screenshot(), "home.png")

    page.goto(url + "/n/sales")
    page.locator(".output-image").wait_for()
    page.get_by_test_id("tab-dag").click()
    page.wait_for_timeout(300)  # the DAG's redraw and the editors' mount settle
    save(page.screenshot(), "notebook.png")

    grid = page.locator(f"#cell-{ids[1]}")
    grid.get_by_role("button", name="Sort by amount").click()
    grid.get_by_role("button", name="Sort by amount").click()
    grid.get_by_text("Rows 1–50 of 1,460").wait_for()
    grid.scroll_into_view_if_needed()
    save(grid.screenshot(), "table.png")

    edited = CELLS[1][1].replace("seed(7)", "seed(8)")
    http.put(f"{base}/cells/{ids[1]}", json={"source": edited}).raise_for_status()
    last = page.locator(f"#cell-{ids[4]}")
    last.get_by_test_id("stale-reason").wait_for()
    last.get_by_role("button", name="Run cell").click()
    page.get_by_test_id("cascade-prompt").wait_for()
    save(page.screenshot(), "cascade.png")
    page.get_by_role("button", name="Cancel").click()

    page.goto(url + "/artifacts")
    page.get_by_test_id("artifact-list").locator("tbody tr").first.wait_for()
    save(page.screenshot(), "artifacts.png")
    page.get_by_role("link", name=re.compile("v1")).last.click()
    page.get_by_test_id("artifact-preview").locator("tbody tr").first.wait_for()
    save(page.screenshot(), "artifact.png")


def main() -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as tmp,
        quiver_serve(Path(tmp)) as (_, seen),
        httpx.Client(base_url=seen["rest"], timeout=120) as http,
        sync_playwright() as p,
    ):
        base, ids = build(http)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(30_000)
            shoot(page, seen["rest"], base, ids, http)
            narrow = browser.new_page(viewport={"width": 420, "height": 800})
            narrow.goto(seen["rest"] + "/n/sales")
            narrow.get_by_test_id("cell").first.wait_for()
            narrow.wait_for_timeout(300)
            save(narrow.screenshot(), "narrow.png")
        finally:
            browser.close()


if __name__ == "__main__":
    main()
