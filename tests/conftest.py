"""Shared fixtures. Domain-specific ones live in the ``tests/fixtures_*`` plugins."""

from __future__ import annotations

from pathlib import Path

import pytest

from quiver.settings import Settings

pytest_plugins = ["tests.fixtures_iceberg"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", notebook_root=tmp_path / "notebooks")
