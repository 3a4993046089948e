"""Running ``uv``: the binary the ``uv`` wheel ships, never through a shell.

:func:`run` runs one uv command with bounded output tails, handing each line
to a callback as it comes (the job log's live stream). :func:`make_venv`
makes a notebook's ``.venv`` from an installed interpreter (never a
downloaded one) and lets it see the server's own packages after its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from foundation import Unavailable

TAIL_CHARS = 20_000
"""How much of each stream a log keeps (the end of it)."""

SHARED_PTH = "_quiver_shared.pth"
"""The file in a notebook venv's site-packages that adds the server's packages after its own."""

Line = Callable[[str, str], None]


@dataclass
class Log:
    """What one uv command said (API.md §2.4 ``OperationLog``)."""

    command: str
    duration_ms: int = 0
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    returncode: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "command": self.command,
            "duration_ms": self.duration_ms,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "stdout_truncated": self.stdout_truncated,
            "stderr_truncated": self.stderr_truncated,
        }

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def error_lines(self) -> str:
        """uv's own words for a failure: its ``error:`` line and what follows."""
        text = self.stderr.strip() or self.stdout.strip()
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.lstrip().startswith(("error:", "×")):
                return "\n".join(lines[i:]).strip()
        return "\n".join(lines[-20:]) or f"uv exited with code {self.returncode}"


def uv_binary() -> str:
    """The uv executable: the one the ``uv`` package installed, else ``uv`` on PATH."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        pass
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(folder) / "uv"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise Unavailable("uv is not installed on this server")


def uv_env() -> dict[str, str]:
    """The server's environment for uv: interpreters are never downloaded, no progress bars,
    and no outer virtualenv steering it (uv works on the notebook's project)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    env.update(UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1", NO_COLOR="1")
    return env


class _Tail:
    def __init__(self) -> None:
        self.parts: deque[str] = deque()
        self.size = 0
        self.truncated = False

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        while self.size > TAIL_CHARS and len(self.parts) > 1:
            self.size -= len(self.parts.popleft())
            self.truncated = True

    def text(self) -> str:
        joined = "".join(self.parts)
        if len(joined) > TAIL_CHARS:
            self.truncated = True
            return joined[-TAIL_CHARS:]
        return joined


def run(
    args: Sequence[str],
    cwd: Path,
    *,
    label: str | None = None,
    on_line: Line | None = None,
    cancel: threading.Event | None = None,
    timeout: float = 600.0,
    python: str | None = None,
) -> Log:
    """Run ``uv <args>`` in ``cwd``; its log (never raises for uv's own failures)."""
    log = Log(label or "uv " + " ".join(args))
    started = time.monotonic()
    proc = subprocess.Popen(
        [uv_binary(), *args],
        cwd=str(cwd),
        env=uv_env() | ({"UV_PYTHON": python} if python else {}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    tails = {"stdout": _Tail(), "stderr": _Tail()}

    def pump(name: str) -> None:
        stream = proc.stdout if name == "stdout" else proc.stderr
        assert stream is not None
        for line in stream:
            tails[name].add(line)
            if on_line is not None:
                on_line(name, line)

    pumps = [threading.Thread(target=pump, args=(n,), daemon=True) for n in tails]
    for t in pumps:
        t.start()
    deadline = started + timeout
    stopped = ""
    while proc.poll() is None:
        if not stopped and cancel is not None and cancel.is_set():
            stopped = "error: cancelled\n"
        elif not stopped and time.monotonic() > deadline:
            stopped = f"error: uv did not finish in {timeout:.0f} s\n"
        if stopped:
            proc.kill()
        try:
            proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue
    for t in pumps:
        t.join(timeout=5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    if stopped:
        tails["stderr"].add(stopped)
    log.returncode = proc.returncode
    log.duration_ms = int((time.monotonic() - started) * 1000)
    log.stdout, log.stdout_truncated = tails["stdout"].text(), tails["stdout"].truncated
    log.stderr, log.stderr_truncated = tails["stderr"].text(), tails["stderr"].truncated
    return log


def server_python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def server_site_dirs() -> list[str]:
    """Where the server's own packages are (its purelib and platlib)."""
    paths = sysconfig.get_paths()
    found: list[str] = []
    for key in ("purelib", "platlib"):
        if paths.get(key) and paths[key] not in found:
            found.append(paths[key])
    return found


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def make_venv(venv: Path, interpreter: str, *, share_server: bool) -> Log:
    """Make ``venv`` (relocatable, so it can be built aside and swapped in) with
    ``interpreter``. With ``share_server`` its site-packages ends with the server's own
    packages: a notebook imports its own installs first, the server's after them."""
    log = run(
        ["venv", "--relocatable", "--quiet", "--python", interpreter, str(venv)],
        venv.parent,
    )
    if log.ok and share_server:
        share_server_packages(venv)
    return log


def share_server_packages(venv: Path) -> None:
    """Let ``venv`` see the server's packages after its own (a ``.pth`` file). Written
    after uv has installed into it when uv works on the venv: uv asks the venv's
    interpreter about itself, which is quicker when the interpreter sees only its own."""
    site = _site_packages(venv)
    if site is not None:
        lines = "".join(f"import site; site.addsitedir({d!r})\n" for d in server_site_dirs())
        (site / SHARED_PTH).write_text(lines, encoding="utf-8")


def _site_packages(venv: Path) -> Path | None:
    lib = venv / "lib"
    if not lib.is_dir():
        return None
    for entry in sorted(lib.iterdir()):
        if entry.name.startswith("python") and (entry / "site-packages").is_dir():
            return entry / "site-packages"
    return None
