"""Cell results: the values a run produced, how they are shown, and where they are kept.

A kernel reports each variable a cell defines as one of four kinds (see
``kernel/cellrun.py``): ``arrow`` (a table, uploaded to the Flight server as an
artifact), ``json``, ``pickle`` or ``memory`` (unserialisable; it lives only
in the kernel that made it). This module turns those reports into the API's
``outputs`` and ``DisplayOutput`` shapes (API.md §2.1, §5), into the input
specs a downstream cell's kernel loads, and keeps finished results by
provenance hash under ``.quiver/results/`` so a later run with the same hash
is a cache hit, across server restarts.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from notebooks.model.paths import atomic_write, remove_stale_temps

log = logging.getLogger(__name__)

CONSOLE_LIMIT = 10_000
"""Characters of stdout / stderr kept per run (API.md §2.1)."""
RESULTS_DIR = "results"
MAX_RESULTS = 2_000


def clip(text: str, limit: int = CONSOLE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 24] + "\n… [output truncated]\n"


@dataclass
class CellResult:
    """One finished run of one cell, keyed by its provenance hash."""

    cell_id: str
    provenance_hash: str
    status: str  # ready | error | cancelled
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Kernel variable reports, by name (``kind``, ``artifact_uri``, ``value``, ...)."""
    displays: list[dict[str, Any]] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    traceback: str | None = None
    duration_ms: float = 0.0
    execution_method: str = "warm"
    cache_hit: bool = False
    kernel: str | None = None
    """Identity of the kernel holding ``memory`` values (they die with it)."""
    inputs: dict[str, str] = field(default_factory=dict)
    """Upstream cell id -> provenance hash consumed."""
    remote: dict[str, str] = field(default_factory=dict)
    """``remote_worker`` and ``remote_transport`` when a worker ran the cell elsewhere."""

    # -- persistence -------------------------------------------------------------------------

    def to_record(self) -> dict[str, Any]:
        return {
            "cell_id": self.cell_id,
            "provenance_hash": self.provenance_hash,
            "status": self.status,
            "variables": self.variables,
            "displays": self.displays,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "error": self.error,
            "traceback": self.traceback,
            "duration_ms": self.duration_ms,
            "execution_method": self.execution_method,
            "kernel": self.kernel,
            "inputs": self.inputs,
            "remote": self.remote,
        }

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> CellResult:
        return cls(
            cell_id=str(rec["cell_id"]),
            provenance_hash=str(rec["provenance_hash"]),
            status=str(rec.get("status", "ready")),
            variables=dict(rec.get("variables") or {}),
            displays=list(rec.get("displays") or []),
            stdout=str(rec.get("stdout") or ""),
            stderr=str(rec.get("stderr") or ""),
            error=rec.get("error"),
            traceback=rec.get("traceback"),
            duration_ms=float(rec.get("duration_ms") or 0.0),
            execution_method=str(rec.get("execution_method") or "warm"),
            kernel=rec.get("kernel"),
            inputs=dict(rec.get("inputs") or {}),
            remote=dict(rec.get("remote") or {}),
        )

    # -- API shapes --------------------------------------------------------------------------

    @property
    def artifact_uris(self) -> dict[str, str]:
        return {
            name: v["artifact_uri"]
            for name, v in self.variables.items()
            if v.get("kind") == "arrow" and v.get("artifact_uri")
        }

    @property
    def artifact_uri(self) -> str | None:
        return next(iter(self.artifact_uris.values()), None)

    def outputs(self) -> dict[str, dict[str, Any]]:
        return {name: output_dict(v) for name, v in self.variables.items()}

    def response(self) -> dict[str, Any]:
        """``CellExecutionResult.to_dict()`` of API.md §5."""
        out: dict[str, Any] = {
            "cell_id": self.cell_id,
            "status": self.status,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "outputs": self.outputs(),
            "displays": self.displays,
            "display": self.displays[-1] if self.displays else None,
            "duration_ms": self.duration_ms,
            "error": self.error,
            "cache_hit": self.cache_hit,
            "artifact_uri": self.artifact_uri,
            "artifact_uris": self.artifact_uris,
            "execution_method": self.execution_method,
            "mutation_warnings": [],
            "provenance_hash": self.provenance_hash,
        }
        if self.traceback:
            out["traceback"] = self.traceback
        out.update(self.remote)  # only when a worker ran it (API.md §5)
        return out

    def cell_fields(self) -> dict[str, Any]:
        """The output members of a ``Cell`` (API.md §2.1)."""
        return {
            "artifact_uri": self.artifact_uri,
            "artifact_uris": self.artifact_uris,
            "display_outputs": self.displays,
            "display_output": self.displays[-1] if self.displays else None,
            "console_stdout": self.stdout,
            "console_stderr": self.stderr,
            "cache_hit": self.cache_hit,
            "execution_method": self.execution_method,
            "remote_worker": self.remote.get("remote_worker"),
            "remote_transport": self.remote.get("remote_transport"),
        }


EMPTY_CELL_FIELDS = CellResult("", "", "idle").cell_fields() | {"execution_method": None}


def output_dict(var: Mapping[str, Any]) -> dict[str, Any]:
    """One entry of ``outputs``: ``{content_type, bytes, preview?, rows?, columns?, ...}``."""
    kind = var.get("kind")
    if kind == "arrow":
        return {
            "content_type": "arrow/ipc",
            "artifact_uri": var.get("artifact_uri"),
            "rows": var.get("rows"),
            "columns": [c["name"] for c in var.get("columns", [])],
            "schema": var.get("columns", []),
            "preview": var.get("preview", []),
            "bytes": var.get("bytes", 0),
            "type": var.get("type"),
            "format": var.get("format"),
        }
    if kind == "json":
        value = var.get("value")
        return {
            "content_type": "json/object",
            "preview": value,
            "bytes": len(json.dumps(value, default=str)),
            "type": var.get("type"),
        }
    if kind == "pickle":
        return {
            "content_type": "pickle/object",
            "preview": var.get("repr"),
            "bytes": var.get("bytes", 0),
            "type": var.get("type"),
        }
    return {
        "content_type": "memory/object",
        "preview": var.get("repr"),
        "bytes": 0,
        "type": var.get("type"),
        "note": var.get("note"),
    }


def display_output(display: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A kernel display (``{mime, data}``) as a ``DisplayOutput`` (API.md §2.1)."""
    if not display:
        return None
    mime, data = display.get("mime"), display.get("data")
    if mime == "application/vnd.quiver.table+json" and isinstance(data, dict):
        shown = {
            "content_type": "arrow/ipc",
            "rows": data.get("row_count"),
            "columns": data.get("columns"),
            "preview": data.get("rows"),
            "bytes": len(json.dumps(data.get("rows"), default=str)),
        }
        if data.get("artifact_uri"):  # the whole table, for paging (cells/{id}/data)
            shown["artifact_uri"] = data["artifact_uri"]
        return shown
    if mime == "image/png" and isinstance(data, str):
        return {
            "content_type": "image/png",
            "bytes": len(data) * 3 // 4,
            "inline_data_url": f"data:image/png;base64,{data}",
        }
    text = data if isinstance(data, str) else json.dumps(data, default=str)
    if mime == "text/markdown":
        return {"content_type": "text/markdown", "markdown_text": text, "bytes": len(text)}
    if mime == "text/html":
        return {"content_type": "text/html", "html": text, "bytes": len(text)}
    return {"content_type": "text/plain", "preview": text, "text": text, "bytes": len(text)}


def markdown_output(source: str) -> dict[str, Any]:
    return {"content_type": "text/markdown", "markdown_text": source, "bytes": len(source)}


def error_output(message: str, traceback: str | None = None) -> dict[str, Any]:
    """A failed run's display: the error and, when the cell raised, the user's traceback."""
    out: dict[str, Any] = {"content_type": "error", "error": message, "bytes": len(message)}
    if traceback:
        out["traceback"] = traceback
    return out


def input_spec(var: Mapping[str, Any], token: str) -> dict[str, Any]:
    """How a kernel loads an upstream variable when its memory does not hold ``token``."""
    kind = var.get("kind")
    if kind == "arrow":
        spec = {
            "token": token,
            "kind": "arrow",
            "uri": var["artifact_uri"],
            "format": var.get("format", "pyarrow"),
        }
        if var.get("location"):  # kept by another Quiver node (a flight worker)
            spec["location"] = var["location"]
        return spec
    if kind == "json":
        return {"token": token, "kind": "json", "value": var.get("value")}
    if kind == "pickle":
        return {"token": token, "kind": "pickle", "data": var["data"]}
    return {"token": token, "kind": "memory"}


def strip_pickles(variables: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Variables without their pickle payloads (kept in the result file only), with sizes."""
    out = {}
    for name, v in variables.items():
        if v.get("kind") == "pickle" and "data" in v:
            v = {k: x for k, x in v.items() if k != "data"}
        out[name] = v
    return out


def pickle_size(var: Mapping[str, Any]) -> int:
    data = var.get("data")
    return len(base64.b64decode(data)) if isinstance(data, str) else 0


class ResultStore:
    """Finished results by provenance hash: ``.quiver/results/<hash>.json``.

    One small file per result, so a cache lookup reads one file and a run
    writes one; the oldest files go beyond ``MAX_RESULTS``.
    """

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / RESULTS_DIR
        remove_stale_temps(self.dir)  # of writes a crash cut short

    def _path(self, provenance_hash: str) -> Path:
        return self.dir / f"{provenance_hash}.json"

    def get(self, provenance_hash: str) -> CellResult | None:
        try:
            rec = json.loads(self._path(provenance_hash).read_text(encoding="utf-8"))
            return CellResult.from_record(rec)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable result %s: %s", provenance_hash, exc)
            return None

    def put(self, result: CellResult) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        body = json.dumps(result.to_record(), separators=(",", ":"), default=str)
        # A lost result is only a cache miss: no fsync on the hot path.
        atomic_write(self._path(result.provenance_hash), body, durable=False)

    def prune(self, keep: int = MAX_RESULTS) -> None:
        try:
            files = sorted(self.dir.glob("*.json"), key=lambda p: p.stat().st_mtime)
        except OSError:
            return
        for old in files[: max(0, len(files) - keep)]:
            old.unlink(missing_ok=True)
