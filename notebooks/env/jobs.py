"""Environment jobs (API.md §2.4 ``EnvJob``) and the notebook's record of the last ones.

A job is one environment operation (``add``, ``remove``, ``sync``, ``import``):
it reports its ``phase`` as it goes and keeps the ends of uv's output. The
last :data:`HISTORY` finished jobs are kept in ``.quiver/environment_jobs.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from notebooks.env.uv import TAIL_CHARS, Log
from notebooks.model import atomic_write

log = logging.getLogger(__name__)

HISTORY = 8
JOBS_FILE = "environment_jobs.json"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class EnvJob:
    action: str
    command: str
    package: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "running"
    started_at: int = field(default_factory=now_ms)
    phase: str | None = "uv_running"
    duration_ms: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    finished_at: int | None = None
    lockfile_changed: bool = False
    stale_cell_count: int = 0
    stale_cell_ids: list[str] = field(default_factory=list)
    error: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), list) else v
            for f in dataclasses.fields(self)
            if f.name != "cancel"
        }

    def append(self, stream: str, text: str) -> None:
        """A line of uv's output as it comes; only the last :data:`TAIL_CHARS` are kept."""
        value = getattr(self, stream) + text
        if len(value) > TAIL_CHARS:
            value = value[-TAIL_CHARS:]
            setattr(self, f"{stream}_truncated", True)
        setattr(self, stream, value)

    def take(self, logs: list[Log]) -> None:
        """The job's output: what its uv commands said, in order."""
        self.stdout = "".join(x.stdout for x in logs)[-TAIL_CHARS:]
        self.stderr = "".join(x.stderr for x in logs)[-TAIL_CHARS:]
        self.stdout_truncated = any(x.stdout_truncated for x in logs)
        self.stderr_truncated = any(x.stderr_truncated for x in logs)

    def finish(self, error: str | None) -> None:
        self.finished_at = now_ms()
        self.duration_ms = self.finished_at - self.started_at
        self.status = "failed" if error else "completed"
        self.phase = "failed" if error else "completed"
        self.error = error


class JobHistory:
    """The last finished jobs of one notebook, newest first, kept on disk."""

    def __init__(self, state_dir: Path) -> None:
        self.file = state_dir / JOBS_FILE
        self.jobs: list[dict[str, Any]] = []
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
            if isinstance(data, list):
                self.jobs = [j for j in data if isinstance(j, dict)][:HISTORY]
        except (OSError, ValueError):
            pass

    def add(self, job: EnvJob) -> None:
        self.jobs = [job.as_dict(), *self.jobs][:HISTORY]
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.file, json.dumps(self.jobs, indent=1), durable=False)
        except OSError as exc:
            log.warning("cannot record environment jobs in %s: %s", self.file, exc)
