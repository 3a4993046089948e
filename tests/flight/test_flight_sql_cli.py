"""``--warehouse`` on the command line: parsed into settings, and served by a real process."""

from __future__ import annotations

from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pytest

from catalog import write_demo_warehouse
from quiver.cli import build_parser, settings_from
from tests.processes import start_quiver, stop


def test_repeated_warehouse_flags_become_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUIVER_WAREHOUSES", "env=file:///elsewhere")
    args = build_parser().parse_args(
        ["flight", "--warehouse", "wh=file:///data/wh", "--warehouse", "lake=/data/lake"]
    )
    assert settings_from(args).warehouses == {"wh": "file:///data/wh", "lake": "/data/lake"}
    plain = build_parser().parse_args(["serve"])
    assert settings_from(plain).warehouses == {"env": "file:///elsewhere"}  # flags override env


def test_a_bad_warehouse_flag_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from quiver.cli import main

    assert main(["flight", "--warehouse", "no-equals-sign"]) != 0
    err = capsys.readouterr().err
    assert "name=location" in err and "Traceback" not in err


def test_quiver_flight_serves_the_warehouses_it_is_given(tmp_path: Path) -> None:
    first = write_demo_warehouse(tmp_path / "one", rows=30, files=1)
    second = write_demo_warehouse(tmp_path / "two", rows=70, files=2)
    args = ["flight", "--data-dir", str(tmp_path / "data"), "--flight-port", "0",
            "--warehouse", f"wh=file://{first.warehouse}",
            "--warehouse", f"lake={second.warehouse}"]  # fmt: skip
    proc, where = start_quiver(args, tmp_path / "flight-stderr.txt")
    try:
        with flightsql.connect(where["flight"], autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT (SELECT count(*) FROM wh.db.events) AS a, count(*) AS b "
                        "FROM lake.db.events")  # fmt: skip
            assert cur.fetchone() == (30, 70)
            catalogs = {c["catalog_name"] for c in conn.adbc_get_objects(depth="catalogs")
                        .read_all().to_pylist()}  # fmt: skip
            assert catalogs == {"wh", "lake", "quiver"}
    finally:
        stop(proc)
