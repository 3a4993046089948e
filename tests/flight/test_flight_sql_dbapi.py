"""Flight SQL through a second client: ``flightsql-dbapi`` and its SQLAlchemy dialect.

It needs SQLAlchemy < 2, which the project's own environment cannot hold, so it
runs in a venv of its own made with ``uv`` (under ``.venv/``, built once, atomically)
from the wheels ``make wheels`` downloads, offline, and talks to the server from a
subprocess. The test is skipped, saying why, only when those wheels are missing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog import TableRef, write_demo_warehouse

CLIENT = ("flightsql-dbapi==0.2.2", "sqlalchemy>=1.4,<2", "pandas")
ROOT = Path(__file__).resolve().parents[2]
WHEELS = ROOT / ".venv" / "wheels" / "flightsql-dbapi"
VENV = ROOT / ".venv" / "test-venvs"
INSTALL_TIMEOUT_S = 300

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import flightsql.sqlalchemy  # registers datafusion+flightsql
    import sqlalchemy as sa
    engine = sa.create_engine(f"datafusion+flightsql://127.0.0.1:{sys.argv[1]}?insecure=true")
    inspector = sa.inspect(engine)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) AS n FROM wh.db.events")).scalar()
        rows = conn.execute(sa.text("SELECT id FROM wh.db.events WHERE id < 3 ORDER BY id"))
        ids = [r[0] for r in rows]
    print(json.dumps({
        "schemas": sorted(inspector.get_schema_names()),
        "tables": inspector.get_table_names(schema="db"),
        "columns": [[c["name"], str(c["type"])] for c in inspector.get_columns("events", "db")],
        "count": n,
        "ids": ids,
    }))
    """
)


def _uv() -> str | None:
    return shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _install(uv: str, target: Path) -> str | None:
    """Make the client's venv at ``target``; None, or why uv could not."""
    work = target.with_name(target.name + ".building")
    shutil.rmtree(work, ignore_errors=True)
    made = subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(work)],
                          capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)  # fmt: skip
    if made.returncode:
        return made.stderr.strip()
    offline = ["--offline", "--no-index", "--find-links", str(WHEELS)]
    done = subprocess.run(
        [uv, "pip", "install", "-q", *offline, "--python", str(work / "bin" / "python"), *CLIENT],
        capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S,
    )  # fmt: skip
    if done.returncode == 0:
        work.rename(target)
        return None
    shutil.rmtree(work, ignore_errors=True)
    return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"


@pytest.fixture(scope="session")
def client_python() -> Path:
    uv = _uv()
    if not WHEELS.is_dir():
        pytest.skip(f"no flightsql-dbapi wheels in {WHEELS} (make wheels downloads them)")
    if uv is None:
        pytest.skip("uv is not installed: cannot make the flightsql-dbapi client's venv")
    target = VENV / "flightsql-dbapi-0.2.2"
    with _locked(VENV / "flightsql-dbapi.lock"):
        if not (target / "bin" / "python").exists():
            why = _install(uv, target)
            if why is not None:
                pytest.skip(f"uv could not install {' '.join(CLIENT)}: {why}")
    return target / "bin" / "python"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> TableRef:
    return write_demo_warehouse(tmp_path_factory.mktemp("wh"), rows=50, files=1)


def test_sqlalchemy_reflection_and_queries(client_python: Path, make_server, warehouse) -> None:
    server = make_server(warehouses={"wh": f"file://{warehouse.warehouse}"})
    port = server.location.rsplit(":", 1)[1]
    out = subprocess.run([str(client_python), "-c", SCRIPT, port],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["schemas"] == ["db", "names"]
    assert seen["tables"] == ["events"]
    assert [name for name, _ in seen["columns"]] == ["id", "value", "category", "ts", "payload"]
    assert seen["count"] == 50
    assert seen["ids"] == [0, 1, 2]
