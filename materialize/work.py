"""What a build thread does with a build: the two shapes of work a build can be.

A :class:`ReaderWork` writes the executor's batches into the build's one file, in
this process (every executor, and ``scan@v1`` without a Dask scheduler); a
:class:`materialize.dask_builds.PartsWork` has Dask workers write the parts. The
materializer runs either the same way: write, then publish, or discard what was
written and fail.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Protocol

import pyarrow as pa

from catalog import ArtifactInfo, Build
from executors import RunContext


class Work(Protocol):
    """The rows of one build, to be written and published."""

    @property
    def schema(self) -> pa.Schema: ...

    def begin(self, build: Build) -> None:
        """Ready the build, in the request's thread (followers may learn the schema)."""
        ...

    def write(self, build: Build, ctx: RunContext) -> None:
        """Produce the rows (raises on failure or cancel)."""
        ...

    def publish(self, build: Build, before_notify: Callable[[], None]) -> ArtifactInfo: ...

    def discard(self, build: Build) -> None:
        """Remove what :meth:`write` left outside the build's own file (never raises)."""
        ...

    def close(self) -> None: ...


class ReaderWork:
    """The executor's reader, written into the build's file in the build thread."""

    def __init__(self, reader: pa.RecordBatchReader) -> None:
        self.reader = reader

    @property
    def schema(self) -> pa.Schema:
        return self.reader.schema

    def begin(self, build: Build) -> None:
        build.start(self.reader.schema)

    def write(self, build: Build, ctx: RunContext) -> None:
        build.write_reader(self.reader)

    def publish(self, build: Build, before_notify: Callable[[], None]) -> ArtifactInfo:
        return build.publish(before_notify=before_notify)

    def discard(self, build: Build) -> None:
        pass  # the build's own file goes with the build

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.reader.close()
