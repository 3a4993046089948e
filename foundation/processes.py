"""Facts about other processes of this machine that several layers ask."""

from __future__ import annotations

import os


def pid_alive(pid: int | None) -> bool:
    """Whether a process with that pid runs (this one does)."""
    if not pid:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
