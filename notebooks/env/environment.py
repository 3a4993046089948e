"""One notebook's Python environment: ``pyproject.toml`` + ``uv.lock`` + ``.venv/``.

The two files are the truth; the venv is made from them. A change (add,
remove, sync, import) runs uv on *copies* of the files in a scratch folder
under ``.quiver/``, builds a fresh venv there, and only when every uv step
succeeded swaps venv, lock and pyproject into place: a failed uv run leaves
the notebook exactly as it was. One change at a time (:class:`EnvBusy`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomlkit

from foundation import Conflict, InvalidArgument
from notebooks.env.base import base_python, base_venv_dir, shares_base, unmet
from notebooks.env.jobs import EnvJob, JobHistory, now_ms
from notebooks.env.requirements import name_of
from notebooks.env.uv import (
    Line,
    Log,
    make_venv,
    run,
    server_python_version,
    share_server_packages,
    venv_python,
)
from notebooks.execution import discover
from notebooks.model import STATE, requested_python

log = logging.getLogger(__name__)

PYPROJECT, LOCK, VENV = "pyproject.toml", "uv.lock", ".venv"
SHARED_NOTICE = (
    "The notebook runs on the shared base environment (the server's packages) until it "
    "changes its environment, which gives it a .venv of its own."
)


class EnvFailed(InvalidArgument):
    """A uv step failed; ``detail`` carries uv's own lines and the operation log."""


def interpreter_for(version: str | None) -> str:
    """An installed interpreter of ``version`` (``X.Y``); the server's own when unset."""
    found = discover()
    chosen = found.get(version or server_python_version())
    if chosen is None:
        raise InvalidArgument(
            f"Python {version} is not installed on this server "
            f"(installed: {', '.join(found)}); interpreters are never downloaded"
        )
    return str(chosen)


def ensure_venv(path: Path) -> Path:
    """The notebook's venv interpreter, made now if missing (a bare venv that sees the
    server's packages: no resolution, no network). Raises when it cannot be made."""
    python = venv_python(path / VENV)
    if python.exists():
        return python
    version = requested_python(path)
    aside = path / STATE / f"venv-new-{os.getpid()}-{threading.get_ident()}"
    shutil.rmtree(aside, ignore_errors=True)
    aside.parent.mkdir(parents=True, exist_ok=True)
    made = make_venv(aside, interpreter_for(version), share_server=_shares(version))
    if not made.ok:
        shutil.rmtree(aside, ignore_errors=True)
        raise InvalidArgument(f"cannot make the notebook's venv: {made.error_lines()}")
    try:
        os.rename(aside, path / VENV)
    except OSError:  # made meanwhile by another thread: theirs stands
        shutil.rmtree(aside, ignore_errors=True)
    return python


def on_base(path: Path) -> bool:
    """Does the notebook run on the shared base venv (:mod:`notebooks.env.base`)?"""
    own = venv_python(path / VENV).exists()
    return shares_base(own, (path / LOCK).is_file(), requested_python(path))


def kernel_python(path: Path) -> str:
    """The interpreter a kernel of the notebook runs: the shared base venv's while the
    notebook needs nothing of its own, else its venv's (made now if missing), or the
    server's own when no venv can be made (no uv, no such Python)."""
    try:
        if on_base(path):
            try:
                return str(base_python())
            except OSError as exc:  # no cache folder to write, say: a venv of its own then
                log.warning("notebook %s cannot use the shared base venv: %s", path, exc)
        return str(ensure_venv(path))
    except Exception as exc:
        log.warning("notebook %s runs on the server's interpreter: %s", path, exc)
        return sys.executable


def _shares(version: str | None) -> bool:
    return version is None or version == server_python_version()


def declared(path: Path) -> list[str]:
    try:
        data = tomllib.loads((path / PYPROJECT).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return []
    deps = data.get("project", {}).get("dependencies", [])
    return [str(d) for d in deps] if isinstance(deps, list) else []


def resolved(path: Path) -> list[dict[str, Any]]:
    """The packages of ``uv.lock`` (the notebook's own virtual project left out)."""
    try:
        data = tomllib.loads((path / LOCK).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return []
    out = []
    for pkg in data.get("package", []):
        source = pkg.get("source", {}) if isinstance(pkg, dict) else {}
        if not isinstance(pkg, dict) or "virtual" in source or "editable" in source:
            continue
        out.append({"name": pkg.get("name"), "version": pkg.get("version"), "specifier": None})
    return out


class Environment:
    """The environment of the notebook at ``path``: its job, its history, its sync record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.history = JobHistory(path / STATE)
        self.job: EnvJob | None = None
        self.sync_state = "ready" if (path / LOCK).is_file() else "unknown"
        self.sync_error: str | None = None
        self.last_synced_at: int | None = None
        self.last_sync_duration_ms: int | None = None
        self._lock = threading.Lock()

    # -- state -------------------------------------------------------------------------------

    def dependencies(self) -> list[dict[str, Any]]:
        return [{"name": name_of(d), "version": None, "specifier": d} for d in declared(self.path)]

    def state(self) -> dict[str, Any]:
        """API.md §2.4 ``EnvState``."""
        version = requested_python(self.path)
        lock = self.path / LOCK
        lock_hash = _hash(lock)
        python = venv_python(self.path / VENV)
        deps = declared(self.path)
        shared = on_base(self.path)
        missing = unmet(deps) if shared else []
        if shared:
            python = venv_python(base_venv_dir())
        return {
            "requested_python_version": version,
            "runtime_python_version": version or server_python_version(),
            "python_version": version or server_python_version(),
            "lockfile_hash": lock_hash,
            "package_count": len(deps),
            "declared_package_count": len(deps),
            "resolved_package_count": len(resolved(self.path)),
            "sync_state": self._sync_state(shared and not missing),
            "sync_error": self.sync_error,
            "sync_notice": _notice(missing) if shared else None,
            "last_synced_at": self.last_synced_at,
            "last_sync_duration_ms": self.last_sync_duration_ms,
            "has_lockfile": lock_hash is not None,
            "venv_python": str(python) if python.exists() else None,
            "interpreter_source": "venv" if python.exists() else "path",
        }

    def jobs(self) -> dict[str, Any]:
        """API.md §2.2: the running job, else the newest finished one, else null; the
        finished ones, newest first."""
        running, history = self.job, list(self.history.jobs)
        current = running.as_dict() if running is not None else (history[0] if history else None)
        return {"environment_job": current, "environment_job_history": history}

    def _sync_state(self, shared: bool) -> str:
        if self.job is not None:
            return "pending"
        if shared and self.sync_state != "failed":
            return "ready"  # the server has every declared package
        return self.sync_state

    # -- jobs --------------------------------------------------------------------------------

    def begin(self, action: str, command: str, package: str | None = None) -> EnvJob:
        """The new running job; 409 ``ENVIRONMENT_BUSY`` while another runs."""
        with self._lock:
            if self.job is not None:
                raise busy(f"Environment operation in progress: {self.job.command}", self.job)
            self.job = EnvJob(action, command, package)
            return self.job

    def end(self, job: EnvJob, error: str | None) -> None:
        job.finish(error)
        with self._lock:
            self.history.add(job)
            if self.job is job:
                self.job = None

    def change(
        self,
        job: EnvJob,
        *,
        add: str | None = None,
        remove: str | None = None,
        replace: list[str] | None = None,
        python: str | None = None,
        on_line: Line | None = None,
    ) -> bool:
        """Run ``job``'s uv steps on copies and swap them in; whether the lock changed.
        Raises :class:`EnvFailed` (nothing changed) with uv's error lines."""
        version = python or requested_python(self.path)
        interpreter = interpreter_for(version)
        scratch = self.path / STATE / "env-work" / job.id
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        logs: list[Log] = []
        started = time.monotonic()

        def uv(*args: str) -> None:
            label = "uv " + " ".join(args)
            done = run(
                ["--directory", str(scratch), *args],
                scratch,
                python=interpreter,
                label=label,
                on_line=on_line,
                cancel=job.cancel,
            )
            logs.append(done)
            job.take(logs)
            if not done.ok:
                lines = done.error_lines()
                detail = {"message": lines, "operation_log": done.as_dict()}
                raise EnvFailed(lines, detail=detail)

        # The bare venv needs only the interpreter: made aside while uv resolves.
        building = _Background(
            lambda: make_venv(scratch / "venv-new", interpreter, share_server=False)
        )
        try:
            for name in (PYPROJECT, LOCK):
                if (self.path / name).is_file():
                    shutil.copy2(self.path / name, scratch / name)
            if add is not None:
                uv("add", "--no-sync", add)
            elif remove is not None:
                uv("remove", "--no-sync", remove)
            else:
                if replace is not None or python is not None:
                    _rewrite(scratch / PYPROJECT, replace, python)
                uv("lock")
            made = building.result()
            logs.append(made)
            if not made.ok:
                raise EnvFailed(made.error_lines(), detail={"message": made.error_lines()})
            os.rename(scratch / "venv-new", scratch / VENV)
            uv("sync", "--frozen", "--no-install-project")
            if _shares(version):
                share_server_packages(scratch / VENV)
            before = _hash(self.path / LOCK)
            self._swap(scratch)
            self.sync_state, self.sync_error = "ready", None
            return before != _hash(self.path / LOCK)
        except EnvFailed as exc:
            if job.action == "sync":
                self.sync_state, self.sync_error = "failed", exc.message
            raise
        finally:
            building.result()  # never remove the scratch folder under a running uv venv
            self.last_synced_at = now_ms()
            self.last_sync_duration_ms = int((time.monotonic() - started) * 1000)
            shutil.rmtree(scratch, ignore_errors=True)

    def _swap(self, scratch: Path) -> None:
        old = scratch / ".venv-old"
        if (self.path / VENV).exists():
            os.rename(self.path / VENV, old)
        os.rename(scratch / VENV, self.path / VENV)
        for name in (LOCK, PYPROJECT):
            if (scratch / name).is_file():
                os.replace(scratch / name, self.path / name)
        with contextlib.suppress(OSError):
            shutil.rmtree(old)


class _Background:
    """A call run on a thread of its own; :meth:`result` waits for it."""

    def __init__(self, call: Callable[[], Log]) -> None:
        self._out: list[Log] = []
        self._thread = threading.Thread(target=lambda: self._out.append(call()), daemon=True)
        self._thread.start()

    def result(self) -> Log:
        self._thread.join()
        if not self._out:
            return Log("uv venv", stderr="error: making the venv raised", returncode=1)
        return self._out[0]


def _notice(missing: list[str]) -> str:
    if not missing:
        return f"{SHARED_NOTICE} The server has every declared package."
    return f"{SHARED_NOTICE} Declared but not on the server: {', '.join(missing)} (sync installs)."


def _rewrite(pyproject: Path, deps: list[str] | None, python: str | None) -> None:
    doc = tomlkit.parse(pyproject.read_text(encoding="utf-8"))
    project = doc.setdefault("project", tomlkit.table())
    if deps is not None:
        array = tomlkit.array()
        array.extend(deps)
        array.multiline(True)
        project["dependencies"] = array
    if python is not None:
        project["requires-python"] = f"=={python}.*"
    pyproject.write_text(tomlkit.dumps(doc), encoding="utf-8")


def _hash(file: Path) -> str | None:
    import hashlib

    try:
        return hashlib.sha256(file.read_bytes()).hexdigest()
    except OSError:
        return None


def busy(message: str, job: EnvJob | None) -> Conflict:
    """409 ``ENVIRONMENT_BUSY`` (API.md §1.1)."""
    return Conflict(
        message,
        detail={
            "message": message,
            "code": "ENVIRONMENT_BUSY",
            "environment_job": job.as_dict() if job is not None else None,
        },
    )


OnLine = Callable[[str, str], None]
