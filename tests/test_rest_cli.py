"""``quiver serve`` runs REST beside Flight; ``quiver rest --flight ...`` runs it alone."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx

from tests.flight.test_flight_cli import QUIVER, stop


def start(args: list[str], tmp_path: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    errors = (tmp_path / "stderr.txt").open("a")
    proc = subprocess.Popen(
        [QUIVER, *args, "--rest-port", "0", "--notebook-root", str(tmp_path / "nb")],
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
        env={**os.environ, "QUIVER_LOG_LEVEL": "warning"},
    )
    errors.close()
    seen: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        key, _, value = line.strip().partition(": ")
        seen[key] = value
        if line.startswith("ready"):
            return proc, seen
    raise AssertionError(
        f"quiver exited with {proc.wait()}: {(tmp_path / 'stderr.txt').read_text()}"
    )


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
