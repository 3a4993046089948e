"""The REST fuzz campaign: schemathesis (``--checks all``) against the real app.

The app runs as ``quiver serve`` runs it (``app_from_settings`` in front of an
in-process Flight server, under uvicorn on an ephemeral port), over a small demo
warehouse and a few seeded things (an artifact with a name, a tag and an alias, a
value put by provenance, a notebook with a cell), whose ids the hooks
(``tests/fuzz_hooks.py``) hand to the generator now and then. Schemathesis runs as
its own command, with ``tests/schemathesis.toml``; ``tests/test_fuzz_rest.py`` runs
a short form, ``bench/fuzz_rest.py`` the long one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from catalog import write_demo_warehouse
from flight import start
from foundation import Settings
from rest.app import app_from_settings
from tests.servers import serving

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tests" / "schemathesis.toml"


@dataclass
class Outcome:
    returncode: int
    output: str
    cases: int
    failures: int


def seed(http: httpx.Client, warehouse_uri: str) -> dict[str, Any]:
    """Make a few things exist: the path parameters that name them and input URIs."""
    body = {"inputs": [warehouse_uri], "transform": {"executor": "scan@v1"}, "name": "seed-scan"}
    built = http.post("/v1/materialize", json=body).json()
    streamed = http.get(built["stream_url"])  # to its end: the build is done and named
    assert streamed.status_code == 200, streamed.text
    aid, version = built["artifact_uri"].removeprefix("strata://artifact/").split("@v=")
    target = {"artifact_id": aid, "version": int(version)}
    http.put(f"/v1/artifacts/{aid}/v/{version}/tags", json={"key": "stage", "value": "fuzz"})
    http.put("/v1/names/seed-scan/aliases/champion", json=target)
    key = "ab" * 32
    http.put(
        f"/v1/artifacts/by-provenance/{key}",
        files={"metadata": (None, json.dumps({"content_type": "text/plain"})), "data": b"x"},
    )
    notebook = http.post(
        "/v1/notebooks/create", json={"parent_path": "", "name": "fuzz", "starter_cell": True}
    ).json()
    session = notebook["session_id"]
    cell = notebook["cells"][0]["id"] if notebook.get("cells") else None
    path: list[dict[str, Any]] = [
        target,
        {"name": "seed-scan"},
        {"name": "seed-scan", "alias": "champion"},
        {"artifact_id": aid, "version": int(version), "key": "stage"},
        {"build_id": aid},
        {"stream_id": aid},
        {"provenance_hash": key},
        {"session_id": session},
    ]
    if cell is not None:
        path.append({"session_id": session, "cell_id": cell})
    inputs = [warehouse_uri, built["artifact_uri"], "strata://name/seed-scan"]
    return {"path": path, "inputs": inputs}


@contextlib.contextmanager
def seeded_server(tmp: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The app, serving over a seeded store: its URL and the seeded parameters."""
    settings = Settings(
        data_dir=tmp / "data",
        notebook_root=tmp / "notebooks",
        flight_port=0,
        host="127.0.0.1",
    )
    table = write_demo_warehouse(tmp / "warehouse", rows=2_000, files=2)
    server = start(settings)
    try:
        with serving(app_from_settings(settings, flight_uri=server.location)) as url:
            with httpx.Client(base_url=url, timeout=60) as http:
                seeds = seed(http, table.uri)
            yield url, seeds
    finally:
        server.close(cancel_builds=True)


def run_schemathesis(
    url: str,
    seeds: dict[str, Any],
    *,
    examples: int,
    seed: int | None,
    only: tuple[str, ...] = (),
) -> Outcome:
    """Schemathesis's command over the app's document; its exit code and counts.

    ``only`` are extra operation filters (``--include-path-regex ...``), to run a part.
    """
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(CONFIG),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(examples),
        "--workers",
        "1",
        "--no-color",
        "--generation-database",
        "none",  # every run draws from its seed alone
    ]
    if seed is not None:
        command += ["--seed", str(seed)]
    command += only
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks",
        "FUZZ_SEEDS": json.dumps(seeds),
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    output = done.stdout + done.stderr
    return Outcome(done.returncode, output, *_counts(output))


_TALLY = re.compile(r"(\d+) generated, (?:\d+ passed|\d+ found (\d+) unique failures?)")


def _counts(output: str) -> tuple[int, int]:
    """Test cases generated and unique failures, from the summary schemathesis prints."""
    found = _TALLY.findall(output)
    if not found:
        return 0, 0
    cases, failures = found[-1]
    return int(cases), int(failures or 0)
