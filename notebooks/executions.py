"""The runners of a manager's sessions (``runner.Runner``): made on first use,
closed with their session, and the one place their frames leave for a transport."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from flight import QuiverClient
from notebooks.execution import FlightConfig
from notebooks.inspect import Inspections
from notebooks.manager import NotebookManager
from notebooks.runner import PromptHook, Runner
from notebooks.session import Session
from notebooks.workers import Workers

log = logging.getLogger(__name__)


class Executions:
    """The runners of a manager's sessions: made on first use, closed with their session."""

    def __init__(
        self,
        manager: NotebookManager,
        flight: FlightConfig,
        *,
        default_timeout: float | None = None,
        emit: Callable[[str, str, dict[str, Any]], None] | None = None,
        workers: Workers | None = None,
    ) -> None:
        self.manager = manager
        self.workers = workers
        self.flight = flight
        self.default_timeout = default_timeout
        self.client = QuiverClient(flight.location, token=flight.token)
        self._emit = emit
        self.prompts: PromptHook | None = None  # set by the AI assistant (notebooks.ai)
        self._runners: dict[str, Runner] = {}
        self._inspections: dict[str, Inspections] = {}
        self._lock = threading.Lock()
        manager.on_close.append(self._session_closed)

    def set_emitter(self, emit: Callable[[str, str, dict[str, Any]], None]) -> None:
        self._emit = emit

    def emit(self, session_id: str, kind: str, payload: dict[str, Any]) -> None:
        if self._emit is not None:
            try:
                self._emit(session_id, kind, payload)
            except Exception:  # a transport failure must never fail a run
                log.exception("dropping a %s frame", kind)

    def runner(self, session: Session) -> Runner:
        with self._lock:
            runner = self._runners.get(session.id)
            if runner is None:
                sid = session.id
                runner = Runner(
                    session,
                    self.flight,
                    self.client,
                    default_timeout=self.default_timeout,
                    emit=lambda kind, payload: self.emit(sid, kind, payload),
                    workers=self.workers,
                    prompts=self.prompts,
                )
                self._runners[sid] = runner
        return runner

    def inspections(self, session: Session) -> Inspections:
        """The session's inspect REPLs (``notebooks.inspect``), closed with the session."""
        runner = self.runner(session)
        with self._lock:
            found = self._inspections.get(session.id)
            if found is None:
                flight = {"location": self.flight.location, "token": self.flight.token}
                found = self._inspections[session.id] = Inspections(session, runner.python, flight)
        return found

    def environment_changed(self, session_id: str) -> None:
        """Kernels and inspect REPLs of the session restart on its changed environment."""
        runner = self.get(session_id)
        if runner is not None:
            runner.reset_kernel()
        with self._lock:
            inspections = self._inspections.pop(session_id, None)
        if inspections is not None:
            inspections.close_all()

    def get(self, session_id: str) -> Runner | None:
        with self._lock:
            return self._runners.get(session_id)

    def _session_closed(self, session: Session) -> None:
        with self._lock:
            runner = self._runners.pop(session.id, None)
            inspections = self._inspections.pop(session.id, None)
        if inspections is not None:
            inspections.close_all()
        if runner is not None:
            runner.close()

    def close(self, ids: Iterable[str] | None = None) -> None:
        with self._lock:
            chosen = list(self._runners) if ids is None else list(ids)
            runners = [self._runners.pop(i) for i in chosen if i in self._runners]
            inspections = [self._inspections.pop(i) for i in chosen if i in self._inspections]
        for inspection in inspections:
            inspection.close_all()
        for runner in runners:
            runner.close()
        if ids is None:
            self.client.close()
