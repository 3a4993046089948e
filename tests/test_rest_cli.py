"""``quiver serve`` runs REST beside Flight; ``quiver rest --flight ...`` runs it alone."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.processes import start_quiver, stop


def start(args: list[str], tmp_path: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    more = ["--rest-port", "0", "--notebook-root", str(tmp_path / "nb")]
    return start_quiver([*args, *more], tmp_path / "stderr.txt")


def test_serve_runs_rest_beside_flight(tmp_path, demo_table) -> None:
    proc, where = start(
        ["serve", "--data-dir", str(tmp_path / "d"), "--flight-port", "0"], tmp_path
    )
    try:
        assert where["rest"].startswith("http://127.0.0.1:")
        with httpx.Client(base_url=where["rest"]) as http:
            assert http.get("/health/ready").json()["status"] == "ready"
            request = {"inputs": [demo_table.uri], "transform": {"executor": "scan@v1"}}
            res = http.post("/v1/materialize", json=request).json()
            assert http.get(res["stream_url"]).status_code == 200
            assert http.get("/v1/notebooks/config").status_code == 200
    finally:
        assert "stopped" in stop(proc)


def test_rest_alone_in_front_of_a_flight_server(flight_server, tmp_path) -> None:
    args = ["rest", "--flight", flight_server.location, "--data-dir", str(tmp_path / "d")]
    proc, where = start(args, tmp_path)
    try:
        assert where["flight"] == flight_server.location
        with httpx.Client(base_url=where["rest"]) as http:
            assert http.get("/health/ready").status_code == 200
            assert http.get("/v1/names").json() == {"names": []}
    finally:
        assert "stopped" in stop(proc)
