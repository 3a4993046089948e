"""Sessions of open notebooks: lifecycle, lookup, idle eviction, discovery, runtime config.

Sessions live in memory only; the directory on disk is the truth, so a
restart loses nothing but session ids. In personal mode re-opening a path
that has a live session returns that session (reloaded from disk unless it
is busy); in service mode every open makes a new session.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from foundation import Conflict, InvalidArgument, NotFound, Settings, Unauthorized
from notebooks.exchange import MountProbe
from notebooks.execution import discover
from notebooks.model import TOML, NotebookDir, caller, check_name, confine, iso, slug, visible
from notebooks.session import Session

NOT_FOUND = "Notebook not found"
_SKIP_DIRS = {".quiver", ".strata", ".venv", "cells", "node_modules", "__pycache__", ".git"}


class NotebookManager:
    """Owns every open :class:`Session`; thread-safe."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        python_versions: dict[str, Path] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.root = settings.notebook_root.expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self.root = self.root.resolve()
        self._python_versions = python_versions
        self._sessions: dict[str, Session] = {}
        self.on_close: list[Callable[[Session], None]] = []
        """Called with each session that is closed or evicted (e.g. to stop its kernel)."""
        self._lock = threading.Lock()
        self._open_lock = threading.Lock()
        self.mounts = MountProbe()
        """Fingerprints the mounts of every session's cells (their provenance)."""
        if python_versions is None:
            # Finding the interpreters asks pyenv (a shell script: ~0.3 s); done now, aside,
            # the first runtime-config request (a browser client's first page) finds them.
            threading.Thread(target=discover, name="quiver-python-discovery", daemon=True).start()

    # -- configuration -----------------------------------------------------------------------

    @property
    def personal(self) -> bool:
        return self.settings.deployment_mode == "personal"

    @property
    def gated(self) -> bool:
        return bool(self.settings.personal_mode_user_header)

    def new_owner(self) -> str | None:
        """The owner of a notebook made (created, imported) now: the caller, when gated."""
        creator = caller.get()
        return creator if self.gated and creator else None

    def visible(self, session: Session) -> bool:
        return visible(session.nb.get("owner"), self.gated)

    def require_personal(self) -> None:
        if not self.personal:
            raise Unauthorized("This route is only available in personal deployment mode")

    def python_versions(self) -> dict[str, Path]:
        if self._python_versions is None:
            self._python_versions = discover()
        return self._python_versions

    def runtime_config(self) -> dict[str, Any]:
        versions = list(self.python_versions())
        return {
            "deployment_mode": self.settings.deployment_mode,
            "default_parent_path": str(self.root),
            "available_python_versions": versions,
            "default_python_version": versions[0] if versions else None,
            "python_selection_fixed": len(versions) <= 1,
            "registry_enabled": self.personal,
        }

    # -- sessions ----------------------------------------------------------------------------

    def evict_idle(self) -> None:
        """Close sessions idle past the timeout, then the oldest idle beyond the cap."""
        now = self.clock()
        limit = self.settings.notebook_session_idle_s
        gone: list[Session] = []
        with self._lock:
            for sid, s in list(self._sessions.items()):
                if now - s.last_used > limit and not s.executing:
                    gone.append(self._sessions.pop(sid))
            extra = len(self._sessions) - self.settings.notebook_max_sessions
            if extra > 0:
                idle = sorted(
                    (s for s in self._sessions.values() if not s.executing),
                    key=lambda s: s.last_used,
                )
                for s in idle[:extra]:
                    gone.append(self._sessions.pop(s.id))
        self._closed(gone)

    def _closed(self, sessions: list[Session]) -> None:
        for session in sessions:
            for hook in self.on_close:
                hook(session)

    def get(self, session_id: str, message: str = NOT_FOUND) -> Session:
        self.evict_idle()
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None or not self.visible(session):
            raise NotFound(message)
        session.touch()
        return session

    def _by_path(self, path: Path) -> Session | None:
        with self._lock:
            for s in self._sessions.values():
                if s.nb.path == path:
                    return s
        return None

    def _register(self, session: Session) -> Session:
        with self._lock:
            self._sessions[session.id] = session
        self.evict_idle()
        return session

    def list_sessions(self) -> list[dict[str, Any]]:
        self.require_personal()
        self.evict_idle()
        with self._lock:
            sessions = list(self._sessions.values())
        return [
            {
                "session_id": s.id,
                "name": s.nb.name,
                "path": s.path,
                "notebook_id": s.nb.notebook_id,
                "created_at": s.created_at,
                "updated_at": iso(s.nb.get("updated_at")),
            }
            for s in sessions
            if s.nb.path.is_relative_to(self.root) and self.visible(s)
        ]

    # -- lifecycle ---------------------------------------------------------------------------

    def create(
        self, parent_path: str, name: str, python_version: str | None, starter_cell: bool
    ) -> Session:
        check_name(name)
        if not slug(name).strip(". "):
            raise InvalidArgument("Invalid notebook name: must contain a letter or digit")
        parent = confine(self.root, parent_path, "parent_path")
        versions = self.python_versions()
        version = python_version or next(iter(versions), None)
        if version is None or version not in versions:
            raise InvalidArgument(
                f"Python {python_version} is not available; "
                f"available versions: {', '.join(versions) or 'none'}"
            )
        target = confine(self.root, str(parent / slug(name)), "parent_path")
        if (target / TOML).exists():
            raise Conflict(f"A notebook already exists at {target}")
        try:
            nb = NotebookDir.create(target, name, version)
        except PermissionError as exc:
            raise Unauthorized(f"Permission denied: {exc.filename or target}") from exc
        if owner := self.new_owner():
            nb.doc["owner"] = owner
            nb.save()
        session = Session(nb, clock=self.clock, mounts=self.mounts)
        if starter_cell:
            session.add_cell("python")
        return self._register(session)

    def open(self, path: str) -> Session:
        target = confine(self.root, path, "path")
        with self._open_lock:  # two opens of one path must not make two sessions
            existing = self._by_path(target) if self.personal else None
            try:
                nb = NotebookDir.open(target)
            except NotFound:
                if existing is not None:
                    self.close(existing.id)  # its directory is gone
                raise
            if not visible(nb.get("owner"), self.gated):
                raise NotFound(NOT_FOUND)
            if existing is not None:
                if not (existing.executing or existing.env_busy):
                    existing.reload()
                existing.touch()
                return existing
            return self._register(Session(nb, clock=self.clock, mounts=self.mounts))

    def close(self, session_id: str) -> None:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is not None:
            self._closed([session])

    def close_all(self) -> None:
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        self._closed(sessions)

    def delete(self, session_id: str) -> dict[str, Any]:
        self.require_personal()
        session = self.get(session_id)
        with session.lock:
            session.ensure_not_busy()
            name = session.nb.name
            session.nb.remove()
        self.close(session_id)
        return {"deleted": True, "session_id": session_id, "name": name, "path": session.path}

    def delete_by_path(self, path: str) -> dict[str, Any]:
        self.require_personal()
        target = confine(self.root, path, "path")
        if not (target / TOML).is_file():
            raise NotFound(f"No notebook found at {path}")
        if not visible(NotebookDir.open(target).get("owner"), self.gated):
            raise NotFound(f"No notebook found at {path}")
        existing = self._by_path(target)
        if existing is not None:
            with existing.lock:
                existing.ensure_not_busy()
                self.close(existing.id)
        NotebookDir(target).remove()
        return {"deleted": True, "path": str(target)}

    def discover(self) -> dict[str, Any]:
        found: list[dict[str, Any]] = []
        for folder, dirs, files in os.walk(self.root):
            if TOML in files:
                dirs.clear()  # a notebook's own folders hold no notebooks
                try:
                    nb = NotebookDir.open(Path(folder))
                    if not visible(nb.get("owner"), self.gated):
                        continue
                    found.append(
                        {
                            "path": folder,
                            "name": nb.name,
                            "notebook_id": nb.get("notebook_id"),
                            "updated_at": iso(nb.get("updated_at")),
                            "owner": nb.get("owner"),
                        }
                    )
                except (NotFound, InvalidArgument, OSError):
                    continue
            else:
                dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        found.sort(key=lambda n: n["path"])
        return {"root": str(self.root), "notebooks": found}
