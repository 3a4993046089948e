"""The inspect REPL: explore a cell's inputs in an interpreter of the notebook's own.

Each open inspection is a kernel worker process of its own (the notebook's
interpreter, its directory, the cell's environment variables) into which the
cell's inputs are loaded as a run would load them: tables from the Flight
server, JSON and pickled values from the upstream results. Values that live
only in the session's kernel (unserialisable ones) cannot cross into another
process; the open answer names them. The session's kernel and its runs are
never touched.

An evaluation is bounded: past :data:`EVAL_TIMEOUT_S` it is interrupted (the
REPL stays, with what it held) and, if it does not stop, the REPL is closed;
its ``repr`` and what it printed are cut at :data:`OUTPUT_LIMIT` characters.
"""

from __future__ import annotations

import threading
from typing import Any

from notebooks.execution import KernelDied, KernelProcess
from notebooks.session import Session

EVAL_TIMEOUT_S = 10.0
OUTPUT_LIMIT = 10_000
START_TIMEOUT_S = 30.0


class Inspections:
    """The open inspect REPLs of one session, by cell. Thread-safe."""

    def __init__(self, session: Session, python: str, flight: dict[str, Any]) -> None:
        self.session = session
        self.python = python
        self.flight = flight
        self._repls: dict[str, KernelProcess] = {}
        self._lock = threading.Lock()

    def open(self, cell_id: str, inputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Start (or restart) the REPL of ``cell_id`` with ``inputs`` (name -> input spec)
        loaded; ``{ok, result, stdout?, error?}``."""
        self.close(cell_id)
        cell = self.session.derived.cell(cell_id)
        env = self.session.cell_env(cell) if cell is not None else {}
        repl = KernelProcess(self.python, cwd=self.session.nb.path, env=env)
        try:
            repl.wait_ready(START_TIMEOUT_S)
            loading = {n: s for n, s in inputs.items() if s.get("kind") != "memory"}
            answer = repl.call("inspect", {"inputs": loading, "flight": self.flight},
                               timeout=START_TIMEOUT_S)  # fmt: skip
        except KernelDied as exc:
            repl.kill()
            return {"ok": False, "error": f"Inspect startup failed: {exc.reason}"}
        with self._lock:
            self._repls[cell_id] = repl
        notes = [
            f"{name}: lives only in the notebook's kernel, not loaded"
            for name, spec in inputs.items()
            if spec.get("kind") == "memory"
        ]
        notes += [f"{name}: {why}" for name, why in (answer.get("failed") or {}).items()]
        out: dict[str, Any] = {"ok": True, "result": "ready", "type": "str"}
        loaded = answer.get("loaded") or []
        if loaded or notes:
            out["stdout"] = "\n".join(
                [f"loaded: {', '.join(loaded)}" if loaded else "loaded: nothing", *notes]
            )
        return out

    def evaluate(self, cell_id: str, expr: str) -> dict[str, Any]:
        """``{ok, result?, type?, stdout?, error?}`` of ``expr`` in the cell's REPL."""
        with self._lock:
            repl = self._repls.get(cell_id)
        if repl is None or not repl.alive:
            return {"ok": False, "error": "No inspect session open for this cell"}
        try:
            answer = repl.call(
                "inspect_eval",
                {"expr": expr, "limit": OUTPUT_LIMIT},
                timeout=EVAL_TIMEOUT_S,
                grace=2.0,
            )
        except KernelDied:
            self.close(cell_id)
            return {
                "ok": False,
                "error": f"Evaluation timed out after {EVAL_TIMEOUT_S:g}s and did not stop; "
                "the inspect session was closed",
            }
        status = answer.get("status")
        out: dict[str, Any] = {"ok": status == "ok"}
        for key in ("result", "type", "stdout", "error"):
            if answer.get(key) not in (None, ""):
                out[key] = answer[key]
        if status == "cancelled":
            out["error"] = f"Evaluation timed out after {EVAL_TIMEOUT_S:g}s"
        return out

    def close(self, cell_id: str) -> None:
        with self._lock:
            repl = self._repls.pop(cell_id, None)
        if repl is not None:
            repl.shutdown(timeout=2)

    def close_all(self) -> None:
        with self._lock:
            repls, self._repls = list(self._repls.values()), {}
        for repl in repls:
            repl.shutdown(timeout=2)
