"""Shared fixtures. Domain-specific ones live in the ``tests/fixtures_*`` plugins."""

from __future__ import annotations

from pathlib import Path

import pytest

from quiver.settings import Settings

pytest_plugins = [
    "tests.fixtures_iceberg",
    "tests.fixtures_flight",
    "tests.fixtures_notebooks",
    "tests.fixtures_execution",
    "tests.fixtures_rest",
]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", notebook_root=tmp_path / "notebooks")


@pytest.fixture
def store(settings: Settings):
    from catalog.store import ArtifactStore

    with ArtifactStore(settings.data_dir, max_bytes=settings.cache_max_bytes) as s:
        yield s


@pytest.fixture
def materializer(settings: Settings, store):
    from executors import load_registry
    from quiver.materialize import Materializer

    m = Materializer(settings, store, load_registry())
    yield m
    m.close(cancel=True)
