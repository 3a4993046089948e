"""Discover the Python interpreters installed on this machine, by ``major.minor``.

Sources: the server's own interpreter, pyenv's versions directory (``pyenv
root``) and ``python3.N`` executables on ``PATH`` (pyenv shims skipped: they
only proxy). Versions older than :data:`MIN_VERSION` cannot run a kernel.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

MIN_VERSION = (3, 10)


def _parse(text: str) -> tuple[int, int] | None:
    parts = text.split(".")
    if len(parts) < 2 or not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    return int(parts[0]), int(parts[1])


def _pyenv_interpreters() -> dict[tuple[int, int], Path]:
    exe = shutil.which("pyenv")
    if exe is None:
        return {}
    try:
        root = subprocess.run(
            [exe, "root"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    found: dict[tuple[int, int], Path] = {}
    versions = Path(root) / "versions"
    if not versions.is_dir():
        return found
    for entry in sorted(versions.iterdir()):
        ver = _parse(entry.name)
        python = entry / "bin" / "python3"
        if ver and python.is_file() and os.access(python, os.X_OK):
            found.setdefault(ver, python)
    return found


def _path_interpreters() -> dict[tuple[int, int], Path]:
    found: dict[tuple[int, int], Path] = {}
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or Path(folder).name == "shims":
            continue
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in sorted(names):
            if (
                not name.startswith("python3.")
                or not name[len("python") :].replace(".", "").isdigit()
            ):
                continue
            path = Path(folder) / name
            ver = _parse(name[len("python") :])
            if ver and path.is_file() and os.access(path, os.X_OK):
                found.setdefault(ver, path)
    return found


@functools.lru_cache(maxsize=1)
def discover() -> dict[str, Path]:
    """``{"3.11": /path/to/python, ...}``; the server's own version first, then ascending."""
    own = (sys.version_info.major, sys.version_info.minor)
    found: dict[tuple[int, int], Path] = {own: Path(sys.executable)}
    for source in (_pyenv_interpreters(), _path_interpreters()):
        for ver, path in source.items():
            found.setdefault(ver, path)
    ordered = [own, *sorted(v for v in found if v != own)]
    return {f"{v[0]}.{v[1]}": found[v] for v in ordered if v >= MIN_VERSION}


def notebook_python(path: Path) -> str:
    """The notebook's own ``.venv`` interpreter once it exists, else the server's."""
    venv = path / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable
