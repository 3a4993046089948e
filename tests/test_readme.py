"""The README's five-minute tour, run as written against a real ``quiver serve``: the CLI
materialize lines, the pyarrow Flight snippet and the curl request (only the warehouse
path and the addresses are swapped for this test's)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import httpx
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tests.polling import wait_until
from tests.processes import QUIVER, start_quiver, stop

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
README_TABLE = "file:///home/you/.quiver/demo-warehouse#db.events"


def block(language: str, containing: str) -> str:
    """The README's fenced ``language`` block that contains ``containing``."""
    found = [b for b in re.findall(rf"```{language}\n(.*?)```", README, re.S) if containing in b]
    assert len(found) == 1, f"expected one {language} block with {containing!r}"
    return found[0]


def test_the_readme_tour_runs_as_written(tmp_path, demo_table) -> None:
    assert README_TABLE in README  # the snippets below name the demo table this way
    proc, where = start_quiver(
        ["serve", "--data-dir", str(tmp_path / "data"), "--notebook-root", str(tmp_path / "nb"),
         "--flight-port", "0", "--rest-port", "0"],
        tmp_path / "stderr.txt",
    )  # fmt: skip
    try:
        # 2. materialize from the command line
        lines = [line for line in block("sh", "quiver materialize").splitlines() if line.strip()]
        assert len(lines) == 2
        for line in lines:
            args = shlex.split(line.replace('"$TABLE"', shlex.quote(demo_table.uri)))
            assert args[0] == ".venv/bin/quiver"
            done = subprocess.run(
                [QUIVER, *args[1:], "--flight", where["flight"]],
                cwd=tmp_path, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
        big = pq.read_table(tmp_path / "big.parquet")
        assert big.column_names == ["id", "value"] and big.num_rows > 0
        assert pc.all(pc.greater(big["value"], 100)).as_py()

        # 3. any Flight client
        code = block("python", "fl.connect").replace("grpc://127.0.0.1:8815", where["flight"])
        namespace: dict = {}
        exec(code.replace(README_TABLE, demo_table.uri), namespace)
        table = namespace["table"]
        assert table.num_rows == big.num_rows and table.column_names == ["id", "value"]

        # 4. REST with curl: the same request and the CSV of its result
        curl = block("sh", "curl")
        body = re.search(r"-d '(\{.*?\})'", curl, re.S)
        assert body is not None
        request = json.loads(body.group(1).replace(README_TABLE, demo_table.uri))
        with httpx.Client(base_url=where["rest"], timeout=60) as http:
            res = http.post("/v1/materialize", json=request).json()
            assert res["artifact_uri"].startswith("strata://artifact/") and res["hit"] is False
            # pending as the README shows, or already ready: a small build can end
            # before the answer is made
            assert res["state"] in ("pending", "ready"), res
            if res["state"] == "pending":
                build = f"/v1/artifacts/builds/{res['build_id']}"
                assert wait_until(lambda: http.get(build).json()["state"] == "ready")
            aid, version = res["artifact_uri"].removeprefix("strata://artifact/").split("@v=")
            csv = http.get(f"/v1/artifacts/{aid}/v/{version}/data?format=csv")
            assert csv.status_code == 200 and csv.text.splitlines()[0] == '"id","category"'
    finally:
        assert "stopped" in stop(proc)
