"""Runtime state under ``.quiver/``: last-run records per cell and environment snapshots.

``.quiver/runtime.json`` is ``{"schema_version": 1, "cells": {<id>: {...}},
"env_snapshots": {<env hash>: {<package>: <version or specifier>}}}``. The
executor (issue 6) records a run through :meth:`RuntimeState.record_run`;
staleness reads it back. Losing the file only makes cells ``idle``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from notebooks.analysis import Env, RunRecord
from notebooks.model.paths import atomic_write

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MAX_SNAPSHOTS = 16


def _requirement_name(spec: str) -> str:
    name = spec.strip()
    for i, ch in enumerate(name):
        if not (ch.isalnum() or ch in "-_."):
            name = name[:i]
            break
    return name.lower().replace("_", "-")


def read_env(path: Path) -> Env:
    """The environment's identity: hash of ``pyproject.toml`` + ``uv.lock``, and its packages.

    Packages come from ``uv.lock`` (name -> version) when it exists, else from
    ``[project].dependencies`` (name -> specifier).
    """
    h = hashlib.sha256()
    packages: dict[str, str] = {}
    pyproject = path / "pyproject.toml"
    lock = path / "uv.lock"
    for f in (pyproject, lock):
        h.update(f.name.encode())
        h.update(b"\0")
        if f.is_file():
            h.update(f.read_bytes())
        h.update(b"\0")
    try:
        if lock.is_file():
            data = tomllib.loads(lock.read_text(encoding="utf-8"))
            for pkg in data.get("package", []):
                own = isinstance(pkg, dict) and "virtual" in (pkg.get("source") or {})
                if isinstance(pkg, dict) and pkg.get("name") and not own:  # not the notebook
                    packages[str(pkg["name"])] = str(pkg.get("version", ""))
        elif pyproject.is_file():
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
            for spec in data.get("project", {}).get("dependencies", []):
                name = _requirement_name(str(spec))
                if name:
                    packages[name] = str(spec)[len(name) :].strip() or "*"
    except (tomllib.TOMLDecodeError, OSError, AttributeError) as exc:
        log.warning("cannot read the environment of %s: %s", path, exc)
    return Env(hash=h.hexdigest()[:32], packages=packages)


class RuntimeState:
    """Per-notebook runtime records. The session coordinator serialises access."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "runtime.json"
        self.cells: dict[str, dict[str, Any]] = {}
        self.env_snapshots: dict[str, dict[str, str]] = {}
        self._runs: dict[str, RunRecord] | None = None
        self.load()

    def load(self) -> None:
        self._runs = None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self.path, exc)
            return
        if isinstance(data, dict) and data.get("schema_version") == SCHEMA_VERSION:
            self.cells = dict(data.get("cells") or {})
            self.env_snapshots = dict(data.get("env_snapshots") or {})

    def save(self, *, durable: bool = True) -> None:
        self._runs = None
        self.path.parent.mkdir(exist_ok=True)
        body = {
            "schema_version": SCHEMA_VERSION,
            "cells": self.cells,
            "env_snapshots": self.env_snapshots,
        }
        atomic_write(self.path, json.dumps(body, indent=1, sort_keys=True), durable=durable)

    def runs(self) -> dict[str, RunRecord]:
        if self._runs is None:
            self._runs = self._parse_runs()
        return self._runs

    def _parse_runs(self) -> dict[str, RunRecord]:
        out = {}
        for cid, rec in self.cells.items():
            try:
                out[cid] = RunRecord(
                    source_hash=rec["last_source_hash"],
                    env_hash=rec["last_env_hash"],
                    provenance_hash=rec["last_provenance_hash"],
                    inputs=dict(rec.get("last_inputs") or {}),
                    status=rec.get("last_status", "ready"),
                )
            except (KeyError, TypeError):
                continue
        return out

    def record_run(
        self,
        cell_id: str,
        *,
        source_hash: str,
        env: Env,
        provenance_hash: str,
        inputs: Mapping[str, str],
        status: str = "ready",
        extra: Mapping[str, Any] | None = None,
        durable: bool = True,
    ) -> None:
        """Remember a finished run; ``extra`` keeps executor fields (outputs, console...).

        Runs save without fsync (``durable=False``): losing the file only
        makes cells idle, and an unreadable one is ignored.
        """
        previous = self.cells.get(cell_id, {})
        record = dict(previous)
        record.update(extra or {})
        record.update(
            last_source_hash=source_hash,
            last_env_hash=env.hash,
            last_provenance_hash=provenance_hash,
            last_inputs=dict(inputs),
            last_status=status,
        )
        packages = dict(env.packages)
        if record == previous and self.env_snapshots.get(env.hash) == packages:
            return  # the same run again (a cache hit): nothing to write
        self.cells[cell_id] = record
        self.env_snapshots[env.hash] = packages
        while len(self.env_snapshots) > MAX_SNAPSHOTS:
            self.env_snapshots.pop(next(iter(self.env_snapshots)))
        self.save(durable=durable)

    def forget(self, cell_id: str) -> None:
        if self.cells.pop(cell_id, None) is not None:
            self.save()
