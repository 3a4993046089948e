"""The shared base environment: one venv for every notebook that has none of its own yet.

Until a notebook changes its environment, its venv would be nothing but an interpreter
that sees the server's packages (``uv venv`` makes it; nothing is resolved or installed):
the same for every notebook on the server's Python. Making one costs a ``uv venv`` per
notebook on the path to its first cell, so a notebook with no ``.venv`` and no ``uv.lock``
of its own, asking for the server's Python, runs on one shared base venv, made once per
server interpreter in the user's cache folder. The notebook gets its own venv the moment
it changes something (an add, a remove, a sync, an import:
:class:`~.environment.Environment` always builds one), and from then on its kernel runs
there, isolated from the other notebooks.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import shutil
import sys
import threading
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from foundation import pid_alive
from notebooks.env.uv import make_venv, server_python_version, server_site_dirs, venv_python

_made = threading.Lock()


def cache_root() -> Path:
    """Where the base venvs live: ``$QUIVER_CACHE_DIR`` when set, else
    ``$XDG_CACHE_HOME/quiver`` (``~/.cache/quiver``)."""
    own = os.environ.get("QUIVER_CACHE_DIR")
    if own:
        return Path(own)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "quiver"


def _sweep_aside(venv: Path) -> None:
    """Remove venvs left half-made beside ``venv`` by servers that died making them."""
    for aside in venv.parent.glob(f"{venv.name}.new-*"):
        pid = aside.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(aside, ignore_errors=True)


def base_venv_dir() -> Path:
    """The base venv of this server's interpreter and packages (their hash names it)."""
    key = "\n".join([os.path.realpath(sys.executable), sys.version, *server_site_dirs()])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_root() / f"base-venv-py{server_python_version()}-{digest}"


def base_python() -> Path:
    """The base venv's interpreter, made now if missing (aside, then renamed into place,
    so servers making it at once never see half of one). Raises when it cannot be made."""
    venv = base_venv_dir()
    python = venv_python(venv)
    if python.exists():
        return python
    with _made:
        if python.exists():
            return python
        aside = venv.with_name(f"{venv.name}.new-{os.getpid()}")
        shutil.rmtree(aside, ignore_errors=True)
        aside.parent.mkdir(parents=True, exist_ok=True)
        _sweep_aside(venv)
        made = make_venv(aside, sys.executable, share_server=True)
        if not made.ok:
            shutil.rmtree(aside, ignore_errors=True)
            raise OSError(f"cannot make the shared base venv: {made.error_lines()}")
        try:
            os.rename(aside, venv)
        except OSError:  # another server made it meanwhile: theirs stands
            shutil.rmtree(aside, ignore_errors=True)
    return python


@functools.lru_cache(maxsize=256)
def server_satisfies(spec: str) -> bool:
    """Does the server's own environment already have a distribution that meets ``spec``
    (its marker, when it has one, evaluated here)?"""
    try:
        req = Requirement(spec)
    except InvalidRequirement:
        return False
    if req.url or req.extras:
        return False
    if req.marker is not None and not req.marker.evaluate():
        return True
    try:
        version = importlib.metadata.version(req.name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return req.specifier.contains(version, prereleases=True)


def shares_base(has_own: bool, has_lock: bool, version: str | None) -> bool:
    """May a notebook run on the base venv: no venv or lock of its own, the server's Python."""
    return not has_own and not has_lock and version in (None, server_python_version())


def unmet(deps: list[str]) -> list[str]:
    """The declared packages the server's own environment does not have."""
    return [d for d in deps if not server_satisfies(d)]
