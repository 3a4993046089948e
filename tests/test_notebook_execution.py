"""Running cells through REST: cascades, modes, the cache, errors, time limits, outputs, SQL.

Real kernels (subprocesses), a real Flight server, the app on a real uvicorn.
"""

from __future__ import annotations

import base64
import os
import threading
import time

import pyarrow.flight as fl

from flight import QuiverClient
from tests.fixtures_execution import Nb
from tests.fixtures_flight import GATES
from tests.polling import wait_until

# Three copies of a 100,000-row table cross joined: 10^15 rows, hours in DuckDB.
LONG_SQL = "select count(*) as n, sum(a.x * b.x * c.x)::bigint as s from t a, t b, t c"


def sql_builds(flight: QuiverClient, state: str) -> list[dict]:
    """The ``sql@v1`` artifact versions on the Flight server in ``state``."""
    listed = flight.action("list", {"state": state})["artifacts"]
    return [a for a in listed if a["executor"] == "sql@v1"]


def test_cascade_cache_and_modes(nb: Nb) -> None:
    a = nb.add("x = 1\nprint('a ran')")
    b = nb.add("y = x + 1")
    c = nb.add("z = y * 10\nz")
    first = nb.run(c)
    assert first["status"] == "ready", first
    assert first["outputs"]["z"]["content_type"] == "json/object"
    assert first["outputs"]["z"]["preview"] == 20
    assert first["display"]["content_type"] == "text/plain" and first["display"]["text"] == "20"
    assert first["execution_method"] in ("cold", "warm") and first["cache_hit"] is False
    cells = nb.cells()
    assert [cells[i]["status"] for i in (a, b, c)] == ["ready", "ready", "ready"]
    assert cells[a]["console_stdout"] == "a ran\n"

    hit = nb.run(c)
    assert hit["execution_method"] == "cached" and hit["cache_hit"] is True
    assert hit["outputs"]["z"]["preview"] == 20

    rerun = nb.run(c, "rerun")
    assert rerun["execution_method"] == "warm" and not rerun["cache_hit"]
    assert nb.cells()[a] == cells[a]  # ready upstream cells are not run again

    nb.edit(a, "x = 2\nprint('a ran')")
    assert nb.cells()[c]["status"] == "stale"
    forced = nb.run(c, "force")  # against b's existing result: y is still 2
    assert forced["outputs"]["z"]["preview"] == 20
    assert nb.cells()[c]["status"] == "stale"  # what it used is not current
    normal = nb.run(c)  # cascades a, b, then c
    assert normal["outputs"]["z"]["preview"] == 30
    assert {v["status"] for v in nb.cells().values()} == {"ready"}
    # reverting a's source brings back its earlier result from the cache
    nb.edit(a, "x = 1\nprint('a ran')")
    assert nb.run(a)["execution_method"] == "cached"
    assert nb.run(c)["outputs"]["z"]["preview"] == 20

    assert nb.run(c, "sideways", status=400)["detail"] == "unknown run mode 'sideways'"
    assert nb.run("nope", status=404)["detail"] == "Cell not found"


def test_environment_variables_notebook_and_per_cell(nb: Nb) -> None:
    import tomlkit

    a = nb.add("import os\nseen = [os.environ.get('REGION'), os.environ.get('MODE')]\nseen")
    b = nb.add("import os\nafter = os.environ.get('MODE')")
    session = nb.manager.get(nb.sid)
    toml_path = session.nb.path / "notebook.toml"

    def configure(notebook_env: dict, cell_env: dict) -> None:
        doc = tomlkit.parse(toml_path.read_text())
        doc["env"] = notebook_env
        for cell in doc["cells"]:
            if cell["id"] == a:
                cell["env"] = cell_env
        toml_path.write_text(tomlkit.dumps(doc))
        session.reload()

    configure({"REGION": "eu", "MODE": "base"}, {"MODE": "cell"})
    cell = nb.cells()[a]
    assert cell["env"] == {"REGION": "eu", "MODE": "cell"} and cell["env_overrides"] == {
        "MODE": "cell"
    }
    assert nb.run(a)["outputs"]["seen"]["preview"] == ["eu", "cell"]
    # the cell's variables are set for its run only: the next cell sees the notebook's
    assert nb.run(b)["outputs"]["after"]["preview"] == "base"
    assert nb.run(a)["execution_method"] == "cached"
    # changing a cell's variables makes it stale (its configuration) and re-runs it
    configure({"REGION": "eu", "MODE": "base"}, {"MODE": "other"})
    stale = nb.cells()[a]
    assert stale["status"] == "stale" and stale["staleness_reasons"] == ["self"]
    assert stale["causality"]["details"] == [{"type": "config_changed", "cell_id": a}]
    rerun = nb.run(a)
    assert rerun["execution_method"] != "cached" and rerun["outputs"]["seen"]["preview"] == [
        "eu",
        "other",
    ]


def test_a_failed_cell_reports_its_error_and_stales_downstream(nb: Nb) -> None:
    a = nb.add("x = 1")
    b = nb.add("y = x + 1")
    assert nb.run(b)["status"] == "ready"
    nb.edit(a, "def f():\n    return 1 / 0\n\nx = f()")
    res = nb.run(a)
    assert res["status"] == "error"
    assert res["error"] == "ZeroDivisionError: division by zero"
    assert "line 4" in res["traceback"]
    assert "worker.py" not in res["traceback"] and "cellrun.py" not in res["traceback"]
    cells = nb.cells()
    assert cells[a]["status"] == "error" and cells[b]["status"] == "stale"
    down = nb.run(b)
    assert down["status"] == "error" and down["error"].startswith(f"upstream cell {a} failed")


def test_time_limit_and_crash_restart_the_kernel(nb: Nb) -> None:
    slow = nb.add("# @timeout 0.5\nwhile True:\n    pass")
    res = nb.run(slow)
    assert res["status"] == "error"
    assert "time limit of 0.5 s" in res["error"] and "restarted" in res["error"]
    crash = nb.add("import os\nos._exit(3)")
    res = nb.run(crash)
    assert res["status"] == "error" and "exited with code 3" in res["error"]
    ok = nb.add("v = 5")
    after = nb.run(ok)
    assert after["status"] == "ready" and after["execution_method"] == "cold"


def test_one_run_at_a_time_and_cancel(nb: Nb, tmp_path) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    blocker = nb.add(f"with open({str(gate)!r}) as f:\n    got = f.read()")
    other = nb.add("w = 1")
    results: list[dict] = []
    t = threading.Thread(target=lambda: results.append(nb.run(blocker)))
    t.start()
    with open(gate, "w") as f:  # opens once the cell is blocked reading: it is running
        r = nb.client.post(f"{nb.base}/cells/{other}/execute")
        assert r.status_code == 409
        assert r.json()["detail"] == f"Notebook is already executing cell {blocker}"
        assert nb.cells()[blocker]["status"] == "running"
        f.write("go")
    t.join(30)
    assert results[0]["outputs"]["got"]["preview"] == "go"

    loop = nb.add("import sys\nprint('spin', flush=True)\nwhile True:\n    pass")
    results.clear()
    t = threading.Thread(target=lambda: results.append(nb.run(loop)))
    runner = nb.executions.runner(nb.manager.get(nb.sid))
    spinning = threading.Event()
    original = runner.emit

    def watch(kind: str, payload: dict) -> None:
        if kind == "cell_console" and "spin" in payload["text"]:
            spinning.set()
        original(kind, payload)

    runner.emit = watch
    t.start()
    assert spinning.wait(30)
    r = nb.client.post(f"{nb.base}/cells/{loop}/cancel")
    assert r.json() == {"cell_id": loop, "cancelled": True}
    t.join(30)
    assert results[0]["status"] == "cancelled"
    assert nb.cells()[loop]["status"] == "idle"
    assert nb.run(other)["status"] == "ready"  # the kernel is still usable


def test_cancel_a_running_sql_cell_stops_its_query(nb: Nb) -> None:
    up = nb.add("import pyarrow as pa\nt = pa.table({'x': list(range(100_000))})")
    q = nb.add(LONG_SQL, "sql")
    held = nb.add("import threading\nlock = threading.Lock()")  # lives only in the kernel
    use = nb.add("still = lock.locked()")
    assert nb.run(up)["status"] == "ready" and nb.run(held)["status"] == "ready"
    before = nb.cells()[held]
    flight = nb.executions.client
    bystander = flight.materialize([], "gated@v1", {"key": "bystander"})  # another build
    results: list[dict] = []
    t = threading.Thread(target=lambda: results.append(nb.run(q)))
    t.start()
    assert wait_until(lambda: len(sql_builds(flight, "building")) == 1)  # DuckDB is at it
    started = time.monotonic()
    r = nb.client.post(f"{nb.base}/cells/{q}/cancel")
    assert r.json() == {"cell_id": q, "cancelled": True}
    t.join(30)
    assert not t.is_alive() and time.monotonic() - started < 10
    assert results[0]["status"] == "cancelled" and results[0]["error"] == "Execution cancelled"
    cell = nb.cells()[q]
    assert cell["status"] == "idle" and not cell.get("artifact_uris")
    # the build failed on the server: no half-written artifact, nothing still running
    assert sql_builds(flight, "building") == [] and sql_builds(flight, "ready") == []
    [failed] = sql_builds(flight, "failed")
    assert failed["error"].endswith("sql@v1 query was cancelled")
    # other builds and the kernel are untouched
    assert flight.status(bystander["artifact_uri"])["state"] == "building"
    GATES["bystander"].set()
    assert flight.fetch(bystander).num_rows == 4000
    res = nb.run(use)
    assert res["status"] == "ready" and res["execution_method"] == "warm"
    assert nb.cells()[held] == before  # its lock was still in the kernel: not run again
    # the same cell runs again and builds, over a smaller input
    nb.edit(up, "import pyarrow as pa\nt = pa.table({'x': list(range(50))})")
    again = nb.run(q)
    assert again["status"] == "ready", again
    assert again["outputs"][f"sql_{q}"]["preview"] == [{"n": 50**3, "s": 1225**3}]
    assert len(sql_builds(flight, "ready")) == 1


def test_every_output_type(nb: Nb) -> None:
    cid = nb.add(
        "import threading, pyarrow as pa, polars as pl, pandas as pd\n"
        "t = pa.table({'a': [1, 2, 3]})\n"
        "rb = pa.record_batch({'b': [1.5]})\n"
        "p = pl.DataFrame({'c': ['x', 'y']})\n"
        "lazy = p.lazy().filter(pl.col('c') == 'y')\n"
        "d = pd.DataFrame({'e': [True]})\n"
        "j = {'k': [1, 2]}\n"
        "s = {1, 2}\n"
        "f = lambda v: v + 1\n"
        "lock = threading.Lock()\n"
    )
    res = nb.run(cid)
    assert res["status"] == "ready", res
    out = res["outputs"]
    tables = {k: (out[k]["content_type"], out[k]["rows"]) for k in ("t", "rb", "p", "lazy", "d")}
    assert tables == {
        "t": ("arrow/ipc", 3),
        "rb": ("arrow/ipc", 1),
        "p": ("arrow/ipc", 2),
        "lazy": ("arrow/ipc", 1),
        "d": ("arrow/ipc", 1),
    }
    assert out["t"]["preview"] == [{"a": 1}, {"a": 2}, {"a": 3}] and out["t"]["columns"] == ["a"]
    assert set(res["artifact_uris"]) == {"t", "rb", "p", "lazy", "d"}
    assert out["j"] == {**out["j"], "content_type": "json/object", "preview": {"k": [1, 2]}}
    assert out["s"]["content_type"] == "pickle/object" and out["s"]["bytes"] > 0
    assert out["f"]["content_type"] == "pickle/object"  # cloudpickle, where pickle fails
    assert out["lock"]["content_type"] == "memory/object"
    assert "will not survive a restart" in out["lock"]["note"]
    # downstream cells get each kind back, tables in their own type, never pickled
    use = nb.add(
        "kinds = [type(v).__module__.split('.')[0] for v in (t, p, d)]\n"
        "total = int(t['a'].to_pylist()[-1]) + len(s) + f(1) + len(j['k'])\n"
        "held = lock.locked()"
    )
    res = nb.run(use)
    assert res["outputs"]["kinds"]["preview"] == ["pyarrow", "polars", "pandas"]
    assert res["outputs"]["total"]["preview"] == 3 + 2 + 2 + 2
    # the tables' artifacts carry the cell's provenance and lineage metadata
    status = nb.executions.client.status(res_uri := nb.cells()[cid]["artifact_uris"]["t"])
    assert status["metadata"]["cell_id"] == cid and status["metadata"]["variable"] == "t"
    assert status["metadata"]["cell_provenance"] == nb.run(cid)["provenance_hash"]
    assert res_uri.startswith("strata://artifact/")


def test_displays_and_markdown(nb: Nb) -> None:
    png = base64.b64encode(b"\x89PNG fake").decode()
    shown = {
        "import pyarrow as pa\npa.table({'a': [1, 2]})": ("arrow/ipc", "rows", 2),
        "class M:\n    def _repr_markdown_(self):\n        return '# hi'\nM()": (
            "text/markdown",
            "markdown_text",
            "# hi",
        ),
        # anything shaped like a PIL image (module and save()) displays as PNG
        "import base64\nclass Image:\n    __module__ = 'PIL.Image'\n"
        f"    def save(self, buf, format):\n        buf.write(base64.b64decode({png!r}))\n"
        "Image()": ("image/png", "inline_data_url", f"data:image/png;base64,{png}"),
    }
    for source, (ctype, key, value) in shown.items():
        res = nb.run(nb.add(source))
        assert res["display"]["content_type"] == ctype and res["display"][key] == value, res
        assert res["displays"] == [res["display"]]
    real = {
        "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([1, 2, 3])\nfig",
        "from PIL import Image\nImage.new('RGB', (4, 3), 'red')",
    }
    for source in real:
        res = nb.run(nb.add(source))
        assert res["status"] == "ready", res
        shown_png = res["display"]
        assert shown_png["content_type"] == "image/png", shown_png
        data = base64.b64decode(shown_png["inline_data_url"].split(",", 1)[1])
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    md = nb.add("# Title\nsome *text*", "markdown")
    res = nb.run(md)
    assert res["status"] == "ready" and res["execution_method"] == "rendered"
    assert res["display"] == {
        "content_type": "text/markdown",
        "markdown_text": "# Title\nsome *text*",
        "bytes": 19,
    }


def test_sql_cells_over_upstream_frames_and_a_warehouse_table(nb: Nb, demo_table) -> None:
    nb.add("import polars as pl\nevents = pl.DataFrame({'id': [1, 2, 3], 'v': [10, 20, 30]})")
    q = nb.add("-- @name big\nselect e.id, v * 2 as w from events e where id > 1 order by 1", "sql")
    use = nb.add("n = big.num_rows\nkind = type(big).__module__")
    res = nb.run(use)
    assert res["status"] == "ready", res
    assert res["outputs"]["n"]["preview"] == 2
    sql = nb.cells()[q]
    assert sql["execution_method"] == "executor" and sql["status"] == "ready"
    assert sql["display_output"]["preview"] == [{"id": 2, "w": 40}, {"id": 3, "w": 60}]
    assert nb.run(q)["execution_method"] == "cached"

    wh = nb.add(f'select count(*) as n from "{demo_table.uri}"', "sql")
    res = nb.run(wh)
    assert res["status"] == "ready", res
    assert res["outputs"][f"sql_{wh}"]["preview"] == [{"n": 20_000}]

    nb.edit(q, "-- @name big\nselect nope from events")
    bad = nb.run(q)
    assert bad["status"] == "error" and bad["error"].startswith("SQL error")
    assert "nope" in bad["error"] and "input0" not in bad["error"]
    nb.edit(q, "select 1; select 2")
    assert "exactly one query" in nb.run(q)["error"]


def test_cache_hits_survive_a_server_restart(make_nb, settings) -> None:
    first = make_nb()
    a = first.add("import pyarrow as pa\nt = pa.table({'a': [1, 2]})")
    b = first.add("n = t.num_rows")
    assert first.run(b)["status"] == "ready"
    path = first.manager.get(first.sid).path
    first.executions.close()
    again = make_nb(path)  # a new manager, new kernels, same disk and Flight server
    cells = again.cells()
    assert cells[b]["status"] == "ready" and cells[b]["console_stdout"] == ""
    hit = again.run(b)
    assert hit["execution_method"] == "cached" and hit["outputs"]["n"]["preview"] == 2
    # a fresh kernel loads the upstream table from its artifact, not by re-running
    res = again.run(b, "rerun")
    assert res["execution_method"] == "cold" and res["outputs"]["n"]["preview"] == 2
    assert again.cells()[a] == cells[a]  # a did not run again


def test_a_10m_row_table_between_two_cells(nb: Nb) -> None:
    nb.add("import numpy as np, pyarrow as pa\nt = pa.table({'x': np.arange(10_000_000)})")
    b = nb.add("import pyarrow.compute as pc\nn = t.num_rows\ns = pc.sum(t['x']).as_py()")
    res = nb.run(b)
    assert res["status"] == "ready", res
    assert res["outputs"]["n"]["preview"] == 10_000_000
    assert res["outputs"]["s"]["preview"] == 10_000_000 * 9_999_999 // 2


def test_cell_data_over_rest_and_flight(nb: Nb) -> None:
    import pyarrow as pa

    a = nb.add("import pyarrow as pa\nt = pa.table({'a': list(range(1000))})\nx = 1")
    nb.run(a)
    url = f"{nb.base}/cells/{a}/outputs"
    http = nb.client
    r = http.get(f"{url}/t")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.apache.arrow.stream"
    assert pa.ipc.open_stream(r.content).read_all().column("a").to_pylist() == list(range(1000))
    uri = r.headers["x-strata-artifact-uri"]
    csv = http.get(f"{url}/t", params={"format": "csv"})
    assert csv.text.splitlines()[:3] == ['"a"', "0", "1"]
    missing = http.get(f"{url}/nope")
    assert missing.status_code == 404 and "no output named 'nope'" in missing.json()["detail"]
    scalar = http.get(f"{url}/x")
    assert scalar.status_code == 404 and "not a table" in scalar.json()["detail"]
    client = fl.connect(nb.location)
    got = client.do_get(fl.Ticket(uri.encode())).read_all()
    assert got.num_rows == 1000
    client.close()
