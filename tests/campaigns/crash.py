"""Crash campaign: ``kill -9`` a running ``quiver serve`` at random moments of a mixed
workload, restart it on the same data, and check that nothing acknowledged was lost
and nothing half-written shows.

Each round starts the server, runs five clients at once — uploads (DoPut), builds
(``sql@v1`` materialize, followed to the end), name changes, notebook saves (cell
edits over REST) and cell runs (a kernel uploads the cell's table) — and, in every
other round, an outside reader of ``store.db`` (an operator's ``sqlite3``: open, read,
close; and ``.backup`` copies). At a random moment the server gets SIGKILL. The next
start must show:

- every artifact reported ready before the kill is readable, with its exact rows;
- no half-written file: no temp file, no ``building`` row, every ready row's file
  whole (size and IPC footer), no published file without its row, and
  ``PRAGMA integrity_check`` ok;
- every name points at the value last acknowledged or one set after it;
- every notebook parses, and each cell's source is the one last saved or a later one;
- the killed server's kernels went away with it.

Every table written is ``x = first, first+1, ...``: its row count, first value and
sum identify it. The short form runs in ``make test`` (tests/campaigns/test_crash.py);
the long form is ``python -m tests.campaigns.crash --kills 50`` (docs/operations.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pyarrow as pa
import pyarrow.compute as pc

from flight import QuiverClient, connect
from notebooks.model.paths import STALE_TEMP_S
from tests.processes import start_quiver

KINDS = ("upload", "build", "name", "save", "run")


@dataclass(frozen=True)
class Sizes:
    """Rows per table written: uploads, builds, cell outputs."""

    upload: tuple[int, int] = (1_000, 200_000)
    build: tuple[int, int] = (10_000, 1_000_000)
    cell: tuple[int, int] = (1_000, 100_000)
    kill_after_s: tuple[float, float] = (0.3, 2.5)


SHORT = Sizes(upload=(1_000, 50_000), build=(10_000, 200_000), cell=(1_000, 20_000),
              kill_after_s=(0.2, 1.0))  # fmt: skip


@dataclass(frozen=True)
class Expect:
    kind: str
    rows: int
    first: int

    def matches(self, table: pa.Table) -> bool:
        if table.num_rows != self.rows or table.column_names != ["x"]:
            return False
        total = pc.sum(table.column("x")).as_py()
        return table.column("x")[0].as_py() == self.first and total == self.rows * self.first + (
            self.rows * (self.rows - 1) // 2
        )


@dataclass
class History:
    """A value saved over and over: the last acknowledged one and those tried since."""

    acked: str | None = None
    tried: list[str] = field(default_factory=list)

    def allowed(self) -> set[str | None]:
        return {self.acked, *self.tried}


@dataclass
class Report:
    kills: int = 0
    with_reader: int = 0
    acked: Counter[str] = field(default_factory=Counter)
    verified_reads: int = 0
    in_flight_at_kill: Counter[str] = field(default_factory=Counter)
    recovered_builds: int = 0
    outside_reads: int = 0
    backups: int = 0
    violations: list[str] = field(default_factory=list)
    errors_before_kill: list[str] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        return {
            "kills": self.kills,
            "kills_with_outside_reader": self.with_reader,
            "acknowledged": dict(self.acked),
            "artifact_reads_verified": self.verified_reads,
            "kills_landing_during": dict(self.in_flight_at_kill),
            "interrupted_builds_recovered": self.recovered_builds,
            "outside_reads": self.outside_reads,
            "outside_backups": self.backups,
            "violations": self.violations,
            "errors_before_kill": self.errors_before_kill,
        }


class Campaign:
    def __init__(self, root: Path, *, seed: int, sizes: Sizes = Sizes()) -> None:
        self.root = root
        self.data = root / "data"
        self.notebooks = root / "notebooks"
        self.rng = random.Random(seed)
        self.sizes = sizes
        self.report = Report()
        self.artifacts: dict[str, Expect] = {}
        self.unverified: list[str] = []
        self.names: dict[str, History] = {}
        self.cells: dict[str, History] = {}
        self.nb_path: Path | None = None
        self.lock = threading.RLock()
        self._next = 1
        self.proc: subprocess.Popen | None = None
        self.where: dict[str, str] = {}

    # --- the server ---------------------------------------------------------------------
    def start(self, round_: int) -> None:
        args = ["serve", "--data-dir", str(self.data), "--flight-port", "0", "--rest-port", "0",
                "--notebook-root", str(self.notebooks)]  # fmt: skip
        self.proc, self.where = start_quiver(args, self.root / f"stderr-{round_}.txt")

    def kill(self) -> list[int]:
        """SIGKILL the server; the pids of its children (kernels) just before."""
        assert self.proc is not None
        children = [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return children

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    # --- one round ----------------------------------------------------------------------
    def stamp(self) -> int:
        with self.lock:
            self._next += 1
            return self._next * 10_000_000

    def run(self, kills: int) -> Report:
        try:
            self.start(0)
            self.verify()
            self.setup_notebook()
            for round_ in range(1, kills + 1):
                self.round(round_, with_reader=round_ % 2 == 1)
                self.start(round_)
                self.verify(final=round_ == kills)
        finally:
            self.stop()
        return self.report

    def setup_notebook(self) -> None:
        http = httpx.Client(base_url=self.where["rest"], timeout=60)
        created = http.post("/v1/notebooks/create", json={"parent_path": ".", "name": "crash"})
        created.raise_for_status()
        self.nb_path = Path(created.json()["path"])
        sid = created.json()["session_id"]
        for _ in range(4):
            cell = http.post(f"/v1/notebooks/{sid}/cells", json={"language": "python"}).json()
            self.cells[cell["id"]] = History(acked="")
        http.close()

    def round(self, round_: int, *, with_reader: bool) -> None:
        killing = threading.Event()
        stop = threading.Event()
        busy: dict[str, int] = Counter()
        threads = [
            threading.Thread(target=self._client, args=(kind, killing, stop, busy), daemon=True)
            for kind in KINDS
        ]
        reader = None
        if with_reader:
            reader = threading.Thread(target=self._outside_reader, args=(stop,), daemon=True)
            threads.append(reader)
            self.report.with_reader += 1
        for t in threads:
            t.start()
        time.sleep(self.rng.uniform(*self.sizes.kill_after_s))  # a random moment, on purpose
        killing.set()
        with self.lock:
            landing = [k for k, n in busy.items() if n]
        children = self.kill()
        stop.set()
        stderr = (self.root / f"stderr-{round_ - 1}.txt").read_text()
        if "Traceback" in stderr:
            self.report.errors_before_kill.append(f"round {round_}: server traceback\n{stderr}")
        self.report.kills += 1
        self.report.in_flight_at_kill.update(landing)
        for t in threads:
            t.join(60)
            if t.is_alive():
                self.report.violations.append(f"round {round_}: a client hangs after the kill")
        for pid in children:
            if not _gone(pid, 15):
                self.report.violations.append(f"round {round_}: kernel {pid} outlived the server")
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).kill()

    # --- clients ------------------------------------------------------------------------
    def _client(
        self, kind: str, killing: threading.Event, stop: threading.Event, busy: Counter[str]
    ) -> None:
        flight = connect(self.where["flight"])
        http = httpx.Client(base_url=self.where["rest"], timeout=60)
        try:
            sid = None
            if kind in ("save", "run"):
                assert self.nb_path is not None
                sid = http.post("/v1/notebooks/open", json={"path": str(self.nb_path)}).json()[
                    "session_id"
                ]
            step = {"upload": self._upload, "build": self._build, "name": self._name,
                    "save": self._save, "run": self._run}[kind]  # fmt: skip
            while not stop.is_set():
                with self.lock:
                    busy[kind] += 1
                try:
                    step(flight, http, sid)
                finally:
                    with self.lock:
                        busy[kind] -= 1
        except Exception as exc:
            if not killing.is_set():
                self.report.errors_before_kill.append(f"{kind}: {type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(Exception):
                flight.close()
            http.close()

    def _table(self, rows: tuple[int, int]) -> tuple[pa.Table, int]:
        first = self.stamp()
        n = self.rng.randint(*rows)
        return pa.table({"x": pa.array(range(first, first + n), pa.int64())}), first

    def _ack(self, kind: str, uri: str, expect: Expect) -> None:
        with self.lock:
            if uri not in self.artifacts:
                self.unverified.append(uri)
            self.artifacts[uri] = expect
            self.report.acked[kind] += 1

    def _upload(self, flight: QuiverClient, http: httpx.Client, sid: str | None) -> None:
        table, first = self._table(self.sizes.upload)
        answer = flight.put(table.to_reader(max_chunksize=16_384))
        if answer["state"] != "ready":
            raise AssertionError(f"upload answered {answer['state']}")
        self._ack("upload", answer["artifact_uri"], Expect("upload", table.num_rows, first))

    def _build(self, flight: QuiverClient, http: httpx.Client, sid: str | None) -> None:
        first = self.stamp()
        n = self.rng.randint(*self.sizes.build)
        sql = f"select i + {first} as x from range({n}) t(i) order by i"
        answer = flight.materialize([], "sql@v1", {"sql": sql})
        flight.fetch(answer["artifact_uri"])  # follows the build to its end
        status = flight.status(answer["artifact_uri"])
        if status["state"] != "ready":
            raise AssertionError(f"build ended {status['state']}: {status.get('error')}")
        self._ack("build", answer["artifact_uri"], Expect("build", n, first))

    def _name(self, flight: QuiverClient, http: httpx.Client, sid: str | None) -> None:
        with self.lock:
            uris = list(self.artifacts)
        if not uris:
            time.sleep(0.01)  # nothing to name yet: not a busy loop
            return
        with self.lock:
            uri = self.rng.choice(uris)
            name = f"crash/n{self.rng.randrange(4)}"
            history = self.names.setdefault(name, History())
            history.tried.append(uri)
        flight.set_name(name, uri)
        with self.lock:
            history.acked, history.tried = uri, []
            self.report.acked["name"] += 1

    def _save(self, flight: QuiverClient, http: httpx.Client, sid: str | None) -> None:
        with self.lock:
            cid = self.rng.choice(sorted(self.cells)[1:])  # the first cell is the run cell's
            source = f"v_{cid} = {self.stamp()}\n"
            self.cells[cid].tried.append(source)
        r = http.put(f"/v1/notebooks/{sid}/cells/{cid}", json={"source": source})
        r.raise_for_status()
        with self.lock:
            self.cells[cid].acked, self.cells[cid].tried = source, []
            self.report.acked["save"] += 1

    def _run(self, flight: QuiverClient, http: httpx.Client, sid: str | None) -> None:
        cid = sorted(self.cells)[0]
        first = self.stamp()
        n = self.rng.randint(*self.sizes.cell)
        source = (
            f"import pyarrow as pa\nt = pa.table({{'x': pa.array(range({first}, {first + n}))}})\n"
        )
        with self.lock:
            self.cells[cid].tried.append(source)
        http.put(f"/v1/notebooks/{sid}/cells/{cid}", json={"source": source}).raise_for_status()
        with self.lock:
            self.cells[cid].acked, self.cells[cid].tried = source, []
        result = http.post(f"/v1/notebooks/{sid}/cells/{cid}/execute")
        result.raise_for_status()
        body = result.json()
        if body["status"] != "ready":
            raise AssertionError(f"cell run ended {body['status']}: {body.get('error')}")
        self._ack("run", body["outputs"]["t"]["artifact_uri"], Expect("run", n, first))

    def _outside_reader(self, stop: threading.Event) -> None:
        """An operator: ``sqlite3 store.db 'select ...'`` again and again, and backups."""
        db = self.data / "store.db"
        copy = self.root / "backup.db"
        while not stop.is_set():
            con = sqlite3.connect(db, timeout=10)
            try:
                con.execute("SELECT count(*) FROM artifacts WHERE state='ready'").fetchone()
                self.report.outside_reads += 1
                if self.report.outside_reads % 10 == 0:
                    copy.unlink(missing_ok=True)
                    target = sqlite3.connect(copy)
                    con.backup(target)
                    ok = target.execute("PRAGMA integrity_check").fetchone()[0]
                    target.close()
                    if ok != "ok":
                        self.report.violations.append(f"a backup of store.db: {ok}")
                    self.report.backups += 1
            except sqlite3.Error as exc:
                if not stop.is_set():
                    self.report.errors_before_kill.append(f"outside reader: {exc}")
            finally:
                con.close()
            stop.wait(0.02)

    # --- after a restart ----------------------------------------------------------------
    def verify(self, *, final: bool = False) -> None:
        flight = connect(self.where["flight"])
        try:
            self._check_files()
            self._check_artifacts(flight, final=final)
            self._check_names(flight)
            self._check_notebooks()
        finally:
            flight.close()

    def _violation(self, what: str) -> None:
        self.report.violations.append(f"after kill {self.report.kills}: {what}")

    def _check_files(self) -> None:
        tmp = list((self.data / "tmp").glob("*"))
        if tmp:
            self._violation(f"temp files left: {[p.name for p in tmp]}")
        db = sqlite3.connect(f"file:{self.data / 'store.db'}?mode=ro", uri=True)
        try:
            if (ok := db.execute("PRAGMA integrity_check").fetchone()[0]) != "ok":
                self._violation(f"store.db integrity_check: {ok}")
            building = db.execute("SELECT count(*) FROM artifacts WHERE state='building'")
            if (n := building.fetchone()[0]) != 0:
                self._violation(f"{n} rows still building")
            self.report.recovered_builds = db.execute(
                "SELECT count(*) FROM artifacts WHERE error LIKE 'build interrupted%'"
            ).fetchone()[0]
            rows = db.execute(
                "SELECT artifact_id, version, byte_size, row_count FROM artifacts "
                "WHERE state IN ('ready', 'superseded')"
            ).fetchall()
        finally:
            db.close()
        published = {(a, v) for a, v, _, _ in rows}
        for artifact_id, version, size, count in rows:
            path = self.data / "artifacts" / artifact_id / f"v{version}.arrow"
            try:
                whole = path.stat().st_size == size
                with pa.memory_map(str(path)) as source:
                    reader = pa.ipc.open_file(source)
                    rows_in_file = sum(
                        reader.get_batch(i).num_rows for i in range(reader.num_record_batches)
                    )
            except (OSError, pa.ArrowInvalid) as exc:
                self._violation(f"{artifact_id}@v{version}: {exc}")
                continue
            if not whole or rows_in_file != count:
                self._violation(f"{artifact_id}@v{version}: file not whole")
        for path in (self.data / "artifacts").glob("*/v*.arrow"):
            if (path.parent.name, int(path.stem[1:])) not in published:
                self._violation(f"published file without its row: {path}")

    def _check_artifacts(self, flight: QuiverClient, *, final: bool) -> None:
        with self.lock:
            older = [u for u in self.artifacts if u not in self.unverified]
            due = list(self.unverified) + (
                older if final else self.rng.sample(older, min(20, len(older)))
            )
            self.unverified.clear()
        for uri in due:
            try:
                table = flight.fetch(uri)
            except Exception as exc:
                self._violation(f"{self.artifacts[uri].kind} {uri} acknowledged, now: {exc}")
                continue
            self.report.verified_reads += 1
            if not self.artifacts[uri].matches(table):
                self._violation(f"{uri}: not the rows written")

    def _check_names(self, flight: QuiverClient) -> None:
        for name, history in self.names.items():
            try:
                got = flight.get_name(name)["artifact_uri"]
            except Exception as exc:
                got = None
                if history.acked is not None:
                    self._violation(f"name {name}: {exc}")
            if got not in history.allowed():
                self._violation(f"name {name} -> {got}, acknowledged {history.acked}")
            history.acked, history.tried = got, []

    def _check_notebooks(self) -> None:
        if self.nb_path is None:
            return
        try:
            toml = tomllib.loads((self.nb_path / "notebook.toml").read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            self._violation(f"notebook.toml: {exc}")
            return
        listed = {c["id"] for c in toml.get("cells", [])}
        for cid, history in self.cells.items():
            if cid not in listed:
                self._violation(f"cell {cid} missing from notebook.toml")
            try:
                source = (self.nb_path / "cells" / f"{cid}.py").read_text()
            except OSError as exc:
                self._violation(f"cell {cid}: {exc}")
                continue
            if source not in history.allowed():
                self._violation(f"cell {cid}: source {source!r} was never saved")
            history.acked, history.tried = source, []
        with httpx.Client(base_url=self.where["rest"], timeout=60) as http:
            opened = http.post("/v1/notebooks/open", json={"path": str(self.nb_path)})
            if opened.status_code != 200:
                self._violation(f"the notebook does not open: {opened.text}")
        # A save cut short leaves its temp file; opening removes the stale ones.
        old = time.time() - STALE_TEMP_S - 5
        for folder in ("", "cells", ".quiver", ".quiver/results"):
            for temp in (self.nb_path / folder).glob(".*.tmp"):
                if temp.stat().st_mtime < old:
                    self._violation(f"a stale temp file stays: {temp}")


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="data directory to keep")
    parser.add_argument("--short", action="store_true", help="the small sizes make test uses")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    with contextlib.ExitStack() as stack:
        root = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        root.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        report = Campaign(root, seed=seed, sizes=SHORT if args.short else Sizes()).run(args.kills)
    summary = {"seed": seed, "seconds": round(time.monotonic() - started, 1), **report.json()}
    print(json.dumps(summary, indent=2))
    return 1 if report.violations or report.errors_before_kill else 0


if __name__ == "__main__":
    sys.exit(main())
