"""Workers (API.md §8): the catalog and its probes over REST, and cells run on a real Dask
``distributed.LocalCluster`` (2 worker processes) and checked against a real Flight server."""

from __future__ import annotations

import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from foundation import Settings
from notebooks import Executions, FlightConfig, NotebookManager, Workers
from rest.app import create_app
from rest.notebooks import notebook_router
from tests.fixtures_execution import Nb
from tests.fixtures_flight import ServerFactory
from tests.fixtures_notebooks import PYTHONS
from tests.polling import wait_until
from tests.servers import serve_asgi


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[str]:
    """A LocalCluster of 2 worker processes, one thread each: a cell swaps its process's
    sys.stdout while it runs, which processes keep apart (threads would mix consoles,
    and processes=False would capture the test server's own output)."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
        host="127.0.0.1", protocol="tcp",
    )  # fmt: skip
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close(timeout=30)


@pytest.fixture
def make_workers_nb(
    settings: Settings, flight_server: Any
) -> Iterator[Callable[..., tuple[Nb, Workers]]]:
    closers: list[Callable[[], None]] = []

    def make(server_workers: list[dict[str, Any]] | None = None) -> tuple[Nb, Workers]:
        workers = Workers(server_workers or [], probe_interval=0, probe_timeout=2)
        manager = NotebookManager(settings, python_versions=dict(PYTHONS))
        executions = Executions(manager, FlightConfig(flight_server.location), workers=workers)
        app = create_app([notebook_router(manager, settings, executions=executions)])
        url, stop = serve_asgi(app, lifespan="off")
        client = httpx.Client(base_url=url, timeout=120)
        r = client.post("/v1/notebooks/create", json={"parent_path": ".", "name": "w"})
        assert r.status_code == 200, r.text
        nb = Nb(client, manager, executions, r.json()["session_id"], flight_server.location, url)

        def close() -> None:
            executions.close()
            workers.close()
            client.close()
            stop()

        closers.append(close)
        return nb, workers

    yield make
    for close in closers:
        close()


def dask_spec(url: str, name: str = "cluster") -> dict[str, Any]:
    return {"name": name, "backend": "executor", "config": {"transport": "dask", "url": url}}


def by_name(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {w["name"]: w for w in body["workers"]}


# -- catalog and routes -------------------------------------------------------------------


def test_catalog_definitions_and_default(
    make_workers_nb: Callable[..., tuple[Nb, Workers]], make_flight_server: ServerFactory,
    tmp_path: Path,
) -> None:  # fmt: skip
    other = make_flight_server(data_dir=tmp_path / "other")  # a second node
    server = {"name": "shared", "backend": "executor",
              "config": {"transport": "flight", "url": other.location}}  # fmt: skip
    nb, _ = make_workers_nb([server])
    specs = [
        {"name": "node2", "backend": "executor",
         "config": {"url": other.location, "token_env": "NODE2_TOKEN"}},
        {"name": "strata-box", "backend": "executor",
         "config": {"transport": "signed", "url": "http://127.0.0.1:9/v1/execute"}},
        {"name": "nowhere", "backend": "executor",
         "config": {"transport": "dask", "url": "tcp://127.0.0.1:9"}},
    ]  # fmt: skip
    r = nb.client.put(f"{nb.base}/workers", json={"workers": specs})
    assert r.status_code == 200, r.text
    assert [w["name"] for w in r.json()["configured_workers"]] == ["node2", "strata-box", "nowhere"]
    toml = tomllib.loads((Path(nb.manager.get(nb.sid).path) / "notebook.toml").read_text())
    assert [w["name"] for w in toml["workers"]] == ["node2", "strata-box", "nowhere"]

    cell = nb.add("# @worker ghost\nx = 1")
    shown = nb.cells()[cell]  # the worker it runs on; the override is its toml value
    assert shown["worker"] == "ghost" and shown["worker_override"] is None
    body = nb.client.get(f"{nb.base}/workers", params={"refresh": "true"}).json()
    assert body["definitions_editable"] is True and body["health_checked_at"] > 0
    names = [w["name"] for w in body["workers"]]
    assert names == ["local", "shared", "node2", "strata-box", "nowhere", "ghost"]
    w = by_name(body)
    assert w["shared"]["source"] == "server" and w["node2"]["source"] == "notebook"
    assert w["node2"]["transport"] == "flight" and w["node2"]["health"] == "healthy"
    assert w["strata-box"]["transport"] == "signed"
    assert w["strata-box"]["health_url"] == "http://127.0.0.1:9/health"
    assert w["strata-box"]["health"] == "unavailable"
    assert w["nowhere"]["health"] == "unavailable" and w["nowhere"]["last_error"]
    assert w["nowhere"]["unavailable_probe_count"] == 1 and w["nowhere"]["probe_count"] == 1
    assert len(w["nowhere"]["health_history"]) == 1
    assert w["ghost"]["source"] == "referenced" and w["ghost"]["allowed"] is False
    for entry in body["workers"]:
        assert {"probe_count", "consecutive_failures", "last_probe_duration_ms"} <= set(entry)

    # a cell on a worker that cannot run it fails at once, saying why
    answer = nb.run(cell)
    assert answer["status"] == "error" and "'ghost' is not defined" in answer["error"]
    nb.edit(cell, "# @worker strata-box\nx = 1")
    answer = nb.run(cell)
    assert answer["status"] == "error" and "transport" in answer["error"]
    assert "dask, flight" in answer["error"]
    nb.edit(cell, "# @worker nowhere\nx = 1")
    started = time.monotonic()
    answer = nb.run(cell)
    assert answer["status"] == "error" and "'nowhere' is unavailable" in answer["error"]
    assert time.monotonic() - started < 10

    twice = nb.client.put(f"{nb.base}/workers", json={"workers": [specs[0], specs[0]]})
    assert twice.status_code == 409 and "'node2' is defined twice" in twice.json()["detail"]
    blank = {"name": "b", "backend": "executor", "config": {"transport": " ", "url": "", "x": None}}
    assert nb.client.put(f"{nb.base}/workers", json={"workers": [*specs, blank]}).status_code == 200

    # the notebook default worker; "local" clears it
    r = nb.client.put(f"{nb.base}/worker", json={"worker": "node2"})
    assert r.status_code == 200 and r.json()["worker"] == "node2" and r.json()["cells"]
    r = nb.client.put(f"{nb.base}/worker", json={"worker": " local "})
    assert r.status_code == 200 and r.json()["worker"] is None


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"name": "-bad", "backend": "executor"}, "pattern"),
        ({"name": "a", "backend": "gpu"}, "backend"),
        ({"name": "a", "backend": "executor", "config": {"transport": "ssh"}},
         "accepted: dask, flight, direct, signed, manifest, build"),
        ({"name": "a", "backend": "executor", "config": {"token": "s3cr3t"}}, "token_env"),
    ],
)  # fmt: skip
def test_bad_definitions_answer_422(
    make_workers_nb: Callable[..., tuple[Nb, Workers]], spec: dict[str, Any], words: str
) -> None:
    nb, _ = make_workers_nb()
    r = nb.client.put(f"{nb.base}/workers", json={"workers": [spec]})
    assert r.status_code == 422 and words in r.text, r.text
    assert "s3cr3t" not in (Path(nb.manager.get(nb.sid).path) / "notebook.toml").read_text()


def test_health_follows_a_server_stopped_and_restarted(
    make_workers_nb: Callable[..., tuple[Nb, Workers]], make_flight_server: ServerFactory,
    tmp_path: Path,
) -> None:  # fmt: skip
    node = make_flight_server(data_dir=tmp_path / "node")
    port = node.port
    nb, _ = make_workers_nb()
    spec = {"name": "node", "backend": "executor", "config": {"url": node.location}}
    assert nb.client.put(f"{nb.base}/workers", json={"workers": [spec]}).status_code == 200

    def health() -> dict[str, Any]:
        body = nb.client.get(f"{nb.base}/workers", params={"refresh": "true"}).json()
        return by_name(body)["node"]

    assert health()["health"] == "healthy"
    node.close()
    down = health()
    assert down["health"] == "unavailable" and down["last_error"]
    assert down["consecutive_failures"] == 1 and down["last_status_change_at"] is not None
    again = make_flight_server(data_dir=tmp_path / "node", flight_port=port)
    assert again.port == port
    up = health()
    assert up["health"] == "healthy" and up["consecutive_failures"] == 0
    assert [h["health"] for h in up["health_history"]] == ["healthy", "unavailable", "healthy"]
    assert up["healthy_probe_count"] == 2 and up["unavailable_probe_count"] == 1


def time_out_and_cancel(nb: Nb, worker: str) -> None:
    """A cell past its time limit fails with a TimeoutError; a printing, spinning cell is
    cancelled once its console came back; the worker then runs the next cell."""
    slow = nb.add(
        f"# @worker {worker}\n# @timeout 1\nimport time\nwhile True:\n    time.sleep(0.02)"
    )
    started = time.monotonic()
    answer = nb.run(slow)
    assert answer["status"] == "error" and answer["error"].startswith("TimeoutError"), answer
    assert time.monotonic() - started < 20

    spin = nb.add(
        f"# @worker {worker}\nimport time\nprint('spinning', flush=True)\n"
        "while True:\n    time.sleep(0.02)"
    )
    results: list[dict[str, Any]] = []
    runner = nb.executions.runner(nb.manager.get(nb.sid))
    seen = threading.Event()
    original = runner.emit

    def watch(kind: str, payload: dict[str, Any]) -> None:
        if kind == "cell_console" and "spinning" in payload["text"]:
            seen.set()
        original(kind, payload)

    runner.emit = watch
    t = threading.Thread(target=lambda: results.append(nb.run(spin)))
    t.start()
    assert seen.wait(60), "the cell never printed"
    assert nb.client.post(f"{nb.base}/cells/{spin}/cancel").json()["cancelled"] is True
    t.join(30)
    assert not t.is_alive() and results[0]["status"] == "cancelled"
    assert wait_until(lambda: nb.cells()[spin]["status"] == "idle", timeout=10)
    ok = nb.add(f"# @worker {worker}\ny = 2")  # interrupted, not left spinning
    assert nb.run(ok)["outputs"]["y"]["preview"] == 2


# -- the Dask backend ---------------------------------------------------------------------


def test_dask_cells_read_and_write_tables_and_stream_their_console(
    make_workers_nb: Callable[..., tuple[Nb, Workers]], dask_cluster: str
) -> None:
    nb, _ = make_workers_nb([dask_spec(dask_cluster)])
    up = nb.add("import pyarrow as pa\nt = pa.table({'k': [1, 2, 1, 2], 'v': [1, 2, 3, 4]})")
    agg = nb.add(
        "# @worker cluster\nimport os\nimport pyarrow.compute as pc\n"
        "print('on', os.getpid(), flush=True)\n"
        "s = t.group_by('k').aggregate([('v', 'sum')]).sort_by('k')\n"
        "n = int(pc.sum(s['v_sum']).as_py())"
    )
    assert nb.run(up)["status"] == "ready"
    with nb.socket() as ws:
        ws.send("cell_execute", cell_id=agg)
        frames = ws.recv_until(lambda f: f["type"] in ("cell_output", "cell_error"))
    kinds = [f["type"] for f in frames]
    assert frames[-1]["type"] == "cell_output", frames[-1]
    console = [f for f in frames if f["type"] == "cell_console" and f["payload"]["cell_id"] == agg]
    assert "on " in "".join(f["payload"]["text"] for f in console)
    assert kinds.index("cell_console") < kinds.index("cell_output")
    cell = nb.cells()[agg]
    assert cell["status"] == "ready" and cell["execution_method"] == "executor"
    assert (cell["remote_worker"], cell["remote_transport"]) == ("cluster", "dask")
    out = nb.run(agg)  # a cache hit now
    assert out["cache_hit"] is True and out["outputs"]["n"]["preview"] == 10
    import os as _os

    assert f"on {_os.getpid()}" not in out["stdout"]  # it ran in a Dask worker process
    uri = out["artifact_uris"]["s"]
    page = nb.client.get(f"{nb.base}/cells/{agg}/data", params={"artifact_uri": uri}).json()
    assert page["columns"] == ["k", "v_sum"] and page["rows"] == [[1, 4], [2, 6]]

    # a local cell downstream reads the Dask cell's table
    down = nb.add("total = int(s.num_rows)")
    assert nb.run(down)["outputs"]["total"]["preview"] == 2


def test_dask_cell_failure_timeout_cancel_and_missing_packages(
    make_workers_nb: Callable[..., tuple[Nb, Workers]], dask_cluster: str
) -> None:
    nb, _ = make_workers_nb([dask_spec(dask_cluster)])
    bad = nb.add("# @worker cluster\nraise ValueError('no good')")
    answer = nb.run(bad)
    assert answer["status"] == "error" and answer["error"] == "ValueError: no good"

    missing = nb.add("# @worker cluster\nimport no_such_package_here\nx = 1")
    answer = nb.run(missing)
    assert answer["status"] == "error" and "no_such_package_here" in answer["error"]
    assert "'cluster' cannot run this cell" in answer["error"]

    time_out_and_cancel(nb, "cluster")


def test_a_big_upstream_travels_by_uri(
    make_workers_nb: Callable[..., tuple[Nb, Workers]], dask_cluster: str
) -> None:
    nb, _ = make_workers_nb([dask_spec(dask_cluster)])
    up = nb.add("import pyarrow as pa\nbig = pa.table({'x': list(range(200_000))})")
    agg = nb.add(
        "# @worker cluster\nimport pyarrow.compute as pc\nm = int(pc.max(big['x']).as_py())"
    )
    assert nb.run(up)["status"] == "ready"
    assert nb.run(agg)["outputs"]["m"]["preview"] == 199999


# -- the Flight backend: another Quiver node ----------------------------------------------


@pytest.fixture(scope="module")
def second_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second ``quiver serve`` on ephemeral ports: its Flight location."""
    from tests.processes import start_quiver, stop

    tmp = tmp_path_factory.mktemp("node2")
    proc, where = start_quiver(
        ["serve", "--data-dir", str(tmp / "data"), "--notebook-root", str(tmp / "nb"),
         "--flight-port", "0", "--rest-port", "0"],
        tmp / "stderr.txt",
    )  # fmt: skip
    try:
        yield where["flight"]
    finally:
        stop(proc)


def flight_spec(url: str, name: str = "node2") -> dict[str, Any]:
    return {"name": name, "backend": "executor", "config": {"transport": "flight", "url": url}}


def test_flight_cells_run_on_the_other_node_and_keep_their_tables_there(
    make_workers_nb: Callable[..., tuple[Nb, Workers]], second_node: str
) -> None:
    nb, _ = make_workers_nb([flight_spec(second_node)])
    up = nb.add("import pyarrow as pa\nt = pa.table({'k': [1, 2, 1], 'v': [1, 2, 3]})")
    far = nb.add(
        "# @worker node2\nprint('remote', flush=True)\n"
        "s = t.group_by('k').aggregate([('v', 'sum')]).sort_by('k')\nn = s.num_rows"
    )
    assert nb.run(up)["status"] == "ready"
    with nb.socket() as ws:
        ws.send("cell_execute", cell_id=far)
        frames = ws.recv_until(lambda f: f["type"] in ("cell_output", "cell_error"))
    assert frames[-1]["type"] == "cell_output", frames[-1]
    kinds = [f["type"] for f in frames]
    assert "cell_console" in kinds and kinds.index("cell_console") < kinds.index("cell_output")
    out = nb.run(far)
    assert out["outputs"]["n"]["preview"] == 2 and "remote" in out["stdout"]
    assert (out["remote_worker"], out["remote_transport"]) == ("node2", "flight")
    assert "remote_worker" not in nb.run(up)  # only when a worker ran it
    uri = out["artifact_uris"]["s"]
    # the table lives on the other node, not here
    import pyarrow.flight as fl

    with fl.connect(second_node) as there:
        got = there.do_get(fl.Ticket(uri.encode())).read_all()
    assert got.to_pydict() == {"k": [1, 2], "v_sum": [4, 2]}
    with fl.connect(nb.location) as here, pytest.raises(fl.FlightError):
        here.do_get(fl.Ticket(uri.encode())).read_all()
    # served over REST here, streamed from there
    page = nb.client.get(f"{nb.base}/cells/{far}/data", params={"artifact_uri": uri}).json()
    assert page["rows"] == [[1, 4], [2, 2]] and page["total"] == 2
    csv = nb.client.get(f"{nb.base}/cells/{far}/data/export", params={"artifact_uri": uri})
    assert csv.status_code == 200 and csv.text.splitlines()[1:] == ["1,4", "2,2"]
    # a local cell downstream reads it from there
    down = nb.add("total = int(s['v_sum'].to_pylist()[0])")
    assert nb.run(down)["outputs"]["total"]["preview"] == 4


def test_flight_cell_failure_timeout_and_cancel(
    make_workers_nb: Callable[..., tuple[Nb, Workers]], second_node: str
) -> None:
    nb, _ = make_workers_nb([flight_spec(second_node)])
    bad = nb.add("# @worker node2\nraise KeyError('gone')")
    answer = nb.run(bad)
    assert answer["status"] == "error" and answer["error"].startswith("KeyError"), answer

    time_out_and_cancel(nb, "node2")
