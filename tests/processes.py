"""Running the ``quiver`` command as a subprocess in tests: start it, read where it
listens from its stdout (no sleeps), stop it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

QUIVER = shutil.which("quiver", path=str(Path(sys.executable).parent)) or "quiver"


def start_quiver(
    args: list[str],
    stderr_path: Path,
    *,
    prefix: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen, dict[str, str]]:
    """Run ``quiver *args`` (after ``prefix``, e.g. ``taskset -c 1``; with ``env`` added to
    the environment); return it once it printed ``ready``, with its ``key: value`` lines."""
    errors = stderr_path.open("a")
    proc = subprocess.Popen(
        [*prefix, QUIVER, *args],
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
        env={**os.environ, "QUIVER_LOG_LEVEL": "warning", **(env or {})},
    )
    errors.close()
    seen: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        key, _, value = line.strip().partition(": ")
        seen[key] = value
        if line.startswith("ready"):
            return proc, seen
    raise AssertionError(f"quiver exited with {proc.wait()}: {stderr_path.read_text()}")


def stop(proc: subprocess.Popen) -> str:
    """SIGTERM; on a hang, dump the server's stacks (SIGUSR1) into its stderr file, kill it."""
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(2)
        proc.kill()
        proc.communicate()
        raise AssertionError("quiver did not stop on SIGTERM; see its stderr file") from None
    assert proc.returncode == 0
    return out
