"""Shared fixtures. Domain-specific ones live in the ``tests/fixtures_*`` plugins."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from foundation import Settings

# Property tests run the same examples every time in make test (no flaky runs), with no
# deadline (the machine is shared); HYPOTHESIS_PROFILE=explore draws new ones, more of them.
hypothesis_settings.register_profile(
    "quiver",
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
hypothesis_settings.register_profile(
    "explore", max_examples=2000, deadline=None, database=None, parent=None
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quiver"))

# No test reaches a package index through uv (notebook environments): tests that need
# packages make wheels and point uv at them (tests/wheels.py).
os.environ["UV_OFFLINE"] = "1"
os.environ["UV_NO_INDEX"] = "1"
# The shared base venv (notebooks.env.base) is made in a folder of this run's own, never in
# the user's cache: a test run leaves nothing behind and never finds an earlier run's venv.
_CACHE_DIR = tempfile.mkdtemp(prefix="quiver-test-cache-")
os.environ["QUIVER_CACHE_DIR"] = _CACHE_DIR


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_CACHE_DIR, ignore_errors=True)


pytest_plugins = [
    "tests.fixtures_iceberg",
    "tests.fixtures_flight",
    "tests.fixtures_notebooks",
    "tests.fixtures_execution",
    "tests.fixtures_rest",
    "tests.fixtures_s3",
    "tests.ai_provider",
]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", notebook_root=tmp_path / "notebooks")


@pytest.fixture
def store(settings: Settings):
    from catalog import ArtifactStore

    with ArtifactStore(settings.data_dir, max_bytes=settings.cache_max_bytes) as s:
        yield s


@pytest.fixture
def materializer(settings: Settings, store):
    from executors import load_registry
    from materialize import Materializer

    m = Materializer(settings, store, load_registry())
    yield m
    m.close(cancel=True)
