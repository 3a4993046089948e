"""Interpreter discovery for GET /v1/notebooks/config: found on this machine, not hard-coded."""

from __future__ import annotations

import os
import sys

from notebooks.execution import interpreters


def fresh() -> dict:
    interpreters.discover.cache_clear()
    try:
        return interpreters.discover()
    finally:
        interpreters.discover.cache_clear()


def test_own_interpreter_comes_first():
    found = fresh()
    own = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert next(iter(found)) == own
    for version, path in found.items():
        major, minor = map(int, version.split("."))
        assert (major, minor) >= interpreters.MIN_VERSION
        assert path.exists()


def test_path_interpreters_are_discovered(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, mode in (("python3.99", 0o755), ("python3.98", 0o644), ("python3.9", 0o755)):
        exe = bin_dir / name
        exe.write_text("#!/bin/sh\n")
        exe.chmod(mode)
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "python3.97").write_text("#!/bin/sh\n")
    (shims / "python3.97").chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), str(shims)]))
    found = fresh()
    assert "3.99" in found  # executable on PATH
    assert "3.98" not in found  # not executable
    assert "3.9" not in found  # too old for a kernel
    assert "3.97" not in found  # pyenv shims only proxy
    assert list(found)[-1] == "3.99"


def test_pyenv_versions_are_discovered(tmp_path, monkeypatch):
    root = tmp_path / "pyenv"
    for version in ("3.12.1", "3.13.0", "2.7.18"):
        exe = root / "versions" / version / "bin" / "python3"
        exe.parent.mkdir(parents=True)
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    fake = tmp_path / "bin" / "pyenv"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho {root}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    found = fresh()
    assert {"3.12", "3.13"} <= set(found)
    assert "2.7" not in found
    assert found["3.13"] == root / "versions" / "3.13.0" / "bin" / "python3"
