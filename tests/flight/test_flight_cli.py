"""The ``quiver`` command: a real ``quiver serve`` subprocess, demo and materialize."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow.flight as fl
import pyarrow.parquet as pq
import pytest

from foundation import InvalidArgument
from quiver.cli import main, parse_filter
from tests.fixtures_flight import DEMO_ROWS, act, cmd
from tests.processes import start_quiver, stop


def start_serve(data_dir: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    """Start ``quiver serve`` on free ports; read where it listens from its stdout."""
    args = ["serve", "--data-dir", str(data_dir), "--flight-port", "0", "--rest-port", "0"]
    return start_quiver(args, data_dir.parent / "serve-stderr.txt")


def test_quiver_serve_subprocess_and_restart(tmp_path, demo_table) -> None:
    proc, where = start_serve(tmp_path / "data")
    try:
        assert where["flight"].startswith("grpc://127.0.0.1:")
        client = fl.connect(where["flight"])
        request = {
            "inputs": [demo_table.uri],
            "transform": {"executor": "scan@v1", "params": {"columns": ["id"]}},
            "name": "served",
        }
        info = client.get_flight_info(cmd(request))
        assert client.do_get(info.endpoints[0].ticket).read_all().num_rows == DEMO_ROWS
        client.close()
    finally:
        out = stop(proc)
    assert "stopped" in out

    proc, where = start_serve(tmp_path / "data")
    try:
        client = fl.connect(where["flight"])
        assert act(client, "name-get", {"name": "served"})["version"] == 1
        assert client.do_get(fl.Ticket(b"strata://name/served")).read_all().num_rows == DEMO_ROWS
        hit = client.get_flight_info(cmd({k: v for k, v in request.items() if k != "name"}))
        assert json.loads(hit.app_metadata)["hit"] is True
        client.close()
    finally:
        stop(proc)


def test_demo_prints_a_runnable_example(tmp_path, capsys) -> None:
    assert main(["demo", "--rows", "500", "--path", str(tmp_path / "wh")]) == 0
    out = capsys.readouterr().out
    assert f"file://{tmp_path / 'wh'}#db.events" in out
    assert "quiver materialize" in out and "fl.connect" in out
    assert main(["demo", "--rows", "500", "--path", str(tmp_path / "wh")]) == 2


def test_materialize_embedded_to_parquet(tmp_path, demo_table, capsys) -> None:
    out = tmp_path / "small.parquet"
    argv = ["materialize", demo_table.uri, "--columns", "id", "value", "--filter", "id < 10",
            "--out", str(out), "--embedded", "--data-dir", str(tmp_path / "d")]  # fmt: skip
    assert main(argv) == 0
    table = pq.read_table(out)
    assert table.num_rows == 10 and table.column_names == ["id", "value"]
    assert "built" in capsys.readouterr().out
    assert main(argv) == 0
    assert "hit" in capsys.readouterr().out


@pytest.mark.parametrize("suffix", [".arrow", ".csv"])
def test_materialize_through_a_server(server, tmp_path, demo_table, capsys, suffix) -> None:
    out = tmp_path / f"x{suffix}"
    argv = ["materialize", demo_table.uri, "--sql", "select count(*) as n from input0",
            "--flight", server.location, "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert out.stat().st_size > 0
    assert main([*argv[:-2]]) == 0
    assert str(DEMO_ROWS) in capsys.readouterr().out


def test_materialize_reports_server_errors(server, capsys) -> None:
    assert main(["materialize", "file:///nowhere#db.t", "--flight", server.location]) == 2
    assert "not_found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("value > 100", {"column": "value", "op": ">", "value": 100}),
        ("category = 'beta'", {"column": "category", "op": "=", "value": "beta"}),
        ("category == beta", {"column": "category", "op": "=", "value": "beta"}),
        ("id <> 3", {"column": "id", "op": "!=", "value": 3}),
        ("id in 1, 2,3", {"column": "id", "op": "in", "value": [1, 2, 3]}),
        ('id in ["a", "b"]', {"column": "id", "op": "in", "value": ["a", "b"]}),
        ("payload is null", {"column": "payload", "op": "is_null"}),
        ("payload IS NOT NULL", {"column": "payload", "op": "not_null"}),
        ("flag = true", {"column": "flag", "op": "=", "value": True}),
        ("value <= 1.5", {"column": "value", "op": "<=", "value": 1.5}),
    ],
)
def test_parse_filter(text, expected) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize("text", ["value", "> 3", "value >", "x is null 3"])
def test_parse_filter_refuses(text) -> None:
    with pytest.raises(InvalidArgument):
        parse_filter(text)
