"""The kernel worker as a real subprocess, exchanging tables with a real Flight server."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pyarrow.flight as fl
import pytest

from notebooks.execution.kernel.process import KernelDied, KernelProcess


@pytest.fixture
def kernel() -> Iterator[KernelProcess]:
    k = KernelProcess()
    k.wait_ready()
    yield k
    k.shutdown()


def run(k: KernelProcess, source: str, **request) -> dict:
    return k.execute({"cell_id": "c1", "source": source, **request})


def test_ready_reports_interpreter_and_modules(kernel: KernelProcess) -> None:
    assert kernel.info["modules"]["pyarrow"] is not None
    assert kernel.info["pid"] == kernel.pid


def test_json_pickle_and_memory_values(kernel: KernelProcess) -> None:
    res = run(
        kernel,
        "import threading\nx = 41 + 1\ny = {'a': [1, 2]}\nz = {1, 2}\nlock = threading.Lock()",
        exports=["x", "y", "z", "lock", "missing"],
        token="t1",
    )
    assert res["status"] == "ok"
    v = res["variables"]
    assert v["x"] == {"kind": "json", "type": "builtins.int", "value": 42}
    assert v["y"]["value"] == {"a": [1, 2]}
    assert v["z"]["kind"] == "pickle"
    assert v["lock"]["kind"] == "memory" and "will not survive a restart" in v["lock"]["note"]
    assert "missing" not in v
    # a downstream cell gets upstream values from the kernel's memory when the token matches
    res2 = run(
        kernel,
        "w = x + len(z)",
        inputs={"x": {"token": "t1", "kind": "memory"}, "z": {"token": "t1", "kind": "memory"}},
        exports=["w"],
    )
    assert res2["variables"]["w"]["value"] == 44
    # and from the serialised form when it does not
    res3 = run(
        kernel,
        "w = x * 2",
        inputs={"x": {"token": "other", "kind": "json", "value": 5}},
        exports=["w"],
    )
    assert res3["variables"]["w"]["value"] == 10


def test_stdout_streams_in_order_before_the_result(kernel: KernelProcess) -> None:
    seen: list[tuple[str, str]] = []
    res = kernel.execute(
        {
            "cell_id": "c",
            "source": "import sys\nprint('one')\nprint('err', file=sys.stderr)\nprint('two')",
        },
        on_console=lambda stream, text: seen.append((stream, text)),
    )
    assert res["status"] == "ok"
    joined = [(s, t) for s, t in seen if t.strip()]
    assert joined == [("stdout", "one"), ("stderr", "err"), ("stdout", "two")]


def test_console_arrives_while_the_cell_runs(kernel: KernelProcess, tmp_path) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)  # the cell blocks reading it until the test writes
    first = threading.Event()
    results: list[dict] = []

    def on_console(stream: str, text: str) -> None:
        if "waiting" in text:
            first.set()

    request = {
        "cell_id": "c",
        "source": "print('waiting', flush=True)\nwith open(GATE) as f:\n    got = f.read()",
        "inputs": {"GATE": {"token": "", "kind": "json", "value": str(gate)}},
        "exports": ["got"],
    }
    t = threading.Thread(
        target=lambda: results.append(kernel.execute(request, on_console=on_console))
    )
    t.start()
    assert first.wait(30), "stdout reached the server before the cell finished"
    assert not results
    with open(gate, "w") as f:
        f.write("open")
    t.join(30)
    assert results[0]["variables"]["got"]["value"] == "open"


def test_errors_have_a_trimmed_traceback(kernel: KernelProcess) -> None:
    res = run(kernel, "def f():\n    return 1 / 0\n\ny = f()")
    assert res["status"] == "error"
    err = res["error"]
    assert err["ename"] == "ZeroDivisionError"
    assert 'File "<cell c1>", line 4' in err["traceback"]
    assert "worker.py" not in err["traceback"] and "cellrun.py" not in err["traceback"]
    syntax = run(kernel, "x = (")
    assert syntax["status"] == "error" and syntax["error"]["ename"] == "SyntaxError"


def test_trailing_expression_is_displayed(kernel: KernelProcess) -> None:
    assert run(kernel, "x = 2\nx * 21")["display"] == {"mime": "text/plain", "data": "42"}
    md = run(kernel, "class M:\n    def _repr_markdown_(self):\n        return '# hi'\nM()")
    assert md["display"] == {"mime": "text/markdown", "data": "# hi"}
    assert run(kernel, "x = 1")["display"] is None
    table = run(kernel, "import pyarrow as pa\npa.table({'a': [1, 2]})")["display"]
    assert table["mime"] == "application/vnd.quiver.table+json" and table["data"]["row_count"] == 2


def test_tables_go_to_flight_and_come_back_in_their_own_type(
    kernel: KernelProcess, flight_server
) -> None:
    flight = {"location": flight_server.location}
    res = run(
        kernel,
        "import polars as pl, pandas as pd, pyarrow as pa\n"
        "p = pl.DataFrame({'a': [1, 2, 3]})\n"
        "lazy = p.lazy().filter(pl.col('a') > 1)\n"
        "d = pd.DataFrame({'b': ['x', 'y']})\n"
        "t = pa.record_batch({'c': [1.5]})\n",
        exports=["p", "lazy", "d", "t"],
        flight=flight,
        put_metadata={"cell_provenance": "abc"},
        token="t1",
    )
    assert res["status"] == "ok", res["error"]
    v = res["variables"]
    assert {k: (v[k]["kind"], v[k]["format"], v[k]["rows"]) for k in v} == {
        "p": ("arrow", "polars", 3),
        "lazy": ("arrow", "polars", 2),
        "d": ("arrow", "pandas", 2),
        "t": ("arrow", "pyarrow", 1),
    }
    assert v["p"]["columns"] == [{"name": "a", "type": "int64"}]
    assert v["p"]["preview"] == [{"a": 1}, {"a": 2}, {"a": 3}]
    # a generic Flight client reads the artifact
    client = fl.connect(flight_server.location)
    got = client.do_get(fl.Ticket(v["d"]["artifact_uri"].encode())).read_all()
    assert got.to_pydict() == {"b": ["x", "y"]}
    # a fresh kernel gets the table back from Flight, as a polars frame again
    fresh = KernelProcess()
    try:
        res2 = fresh.execute(
            {
                "cell_id": "c2",
                "source": "n = int(p['a'].sum())\nkind = type(p).__module__",
                "inputs": {
                    "p": {
                        "token": "t1",
                        "kind": "arrow",
                        "uri": v["p"]["artifact_uri"],
                        "format": "polars",
                    }
                },
                "exports": ["n", "kind"],
                "flight": flight,
            }
        )
    finally:
        fresh.shutdown()
    assert res2["variables"]["n"]["value"] == 6
    assert res2["variables"]["kind"]["value"].startswith("polars")


def test_the_worker_finds_its_neighbour_without_its_folder_on_sys_path() -> None:
    """PYTHONSAFEPATH keeps a script's own folder off ``sys.path``: the worker still
    imports ``cellrun.py`` beside it."""
    k = KernelProcess(env={"PYTHONSAFEPATH": "1"})
    try:
        assert run(k, "x = 6 * 7", exports=["x"])["variables"]["x"]["value"] == 42
    finally:
        k.shutdown()


def test_a_crash_is_reported_with_its_reason() -> None:
    k = KernelProcess()
    try:
        with pytest.raises(KernelDied, match="exited with code 3"):
            run(k, "import os\nos._exit(3)")
        assert not k.alive
    finally:
        k.kill()
    k = KernelProcess()
    try:
        with pytest.raises(KernelDied, match="killed by SIGSEGV"):
            run(k, "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)")
    finally:
        k.kill()


def test_time_limit_kills_the_kernel() -> None:
    k = KernelProcess()
    try:
        with pytest.raises(KernelDied, match=r"longer than its time limit of 0\.5 s") as info:
            k.execute({"cell_id": "c", "source": "while True:\n    pass"}, timeout=0.5)
        assert info.value.timed_out and not k.alive
    finally:
        k.kill()


def test_interrupt_cancels_the_running_cell(kernel: KernelProcess) -> None:
    started = threading.Event()
    results: list[dict] = []

    def go() -> None:
        results.append(
            kernel.execute(
                {"cell_id": "c", "source": "print('go', flush=True)\nwhile True:\n    pass"},
                on_console=lambda s, t: started.set(),
            )
        )

    t = threading.Thread(target=go)
    t.start()
    assert started.wait(30)
    kernel.interrupt()
    t.join(30)
    assert results[0]["status"] == "cancelled"
    assert run(kernel, "x = 1", exports=["x"])["variables"]["x"]["value"] == 1  # still usable


def test_kill_reaps_the_process_group(kernel: KernelProcess) -> None:
    pid = kernel.pid
    kernel.kill()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert signal.SIGKILL  # keep the import honest


def test_environment_variables_are_set_for_one_run(kernel: KernelProcess) -> None:
    probe = "import os\nv = [os.environ.get('QUIVER_T_NEW'), os.environ.get('HOME')]"
    home = os.environ.get("HOME")
    res = run(kernel, probe, exports=["v"], env={"QUIVER_T_NEW": "1", "HOME": "/elsewhere"})
    assert res["variables"]["v"]["value"] == ["1", "/elsewhere"]
    after = run(kernel, probe, exports=["v"])  # put back: one unset again, one as it was
    assert after["variables"]["v"]["value"] == [None, home]
    failed = run(
        kernel, "import os\nraise ValueError(os.environ['QUIVER_T_NEW'])", env={"QUIVER_T_NEW": "2"}
    )
    assert failed["status"] == "error" and failed["error"]["evalue"] == "2"
    assert run(kernel, probe, exports=["v"])["variables"]["v"]["value"] == [None, home]
