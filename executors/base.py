"""The executor contract: what a transform must provide to run under Quiver."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import pyarrow as pa
from pydantic import BaseModel

from foundation import Settings


@dataclass(slots=True)
class ResolvedInput:
    """One input of a transform, resolved to an immutable version.

    ``kind`` is ``"table"`` for an Iceberg table (``version`` is the snapshot
    id as a string, ``"empty"`` for a table with no snapshot) or
    ``"artifact"`` (``version`` is the artifact URI). ``uri`` is canonical.

    ``open_table`` gives the whole input as an Arrow table (an artifact is
    memory-mapped, so this copies nothing); ``open_reader`` streams it.
    ``table``/``snapshot_id`` carry the loaded pyiceberg table for executors
    that plan their own reads (``scan@v1``). For a table, ``cached_table`` gives
    its plain scan as ``open_table`` does only when that is already built (else
    None, having built nothing), so an executor may read the files instead.
    """

    uri: str
    kind: Literal["table", "artifact"]
    version: str
    open_table: Callable[[], pa.Table]
    open_reader: Callable[[], pa.RecordBatchReader]
    table: Any = None
    snapshot_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    cached_table: Callable[[], pa.Table | None] | None = None


@dataclass(slots=True)
class RunContext:
    """What a running executor may use: settings and a cancellation hook.

    An executor that runs a query registers a callable with
    :meth:`on_cancel`; the caller invokes :meth:`cancel` on time-out or when
    the build is abandoned. Work that need not delay the result (closing a
    finished query's database) goes to :meth:`on_finish`, which the caller runs
    with :meth:`finish` once the result is published or has failed.
    """

    settings: Settings
    _cancel_hooks: list[Callable[[], None]] = field(default_factory=list)
    cancelled: bool = False
    _finish_hooks: list[Callable[[], None]] = field(default_factory=list)
    finished: bool = False

    def on_cancel(self, hook: Callable[[], None]) -> None:
        self._cancel_hooks.append(hook)
        if self.cancelled:
            hook()

    def cancel(self) -> None:
        self.cancelled = True
        for hook in list(self._cancel_hooks):
            with contextlib.suppress(Exception):  # cancelling is best effort
                hook()

    def on_finish(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` at :meth:`finish` (at once when that has been)."""
        if self.finished:
            hook()
            return
        self._finish_hooks.append(hook)

    def finish(self) -> None:
        """The result is published or has failed: run the hooks, in order, once."""
        self.finished = True
        hooks, self._finish_hooks = self._finish_hooks, []
        for hook in hooks:
            with contextlib.suppress(Exception):  # tidying up never fails a build
                hook()


@runtime_checkable
class Executor(Protocol):
    """A transform registered under ``name@vN``.

    - ``name``: the registry key, e.g. ``scan@v1``.
    - ``params_model``: a pydantic model validating ``transform.params``.
    - ``ordered_inputs``: whether the result depends on the order of the
      inputs. When false the provenance hash sorts them.
    - ``input_kinds``: the input kinds accepted (``"table"``, ``"artifact"``).
    - ``check_inputs``: raise ``InvalidArgument`` when the number or kinds of
      inputs don't fit (called before any input is resolved).
    - ``identity``: a canonical, JSON-able identity of validated params for the
      provenance hash (e.g. sorted columns, normalised filters): two params
      that give the same result must give the same identity.
    - ``run``: validate params against the resolved inputs (unknown column,
      wrong filter type → ``InvalidArgument``) *before returning*, then return
      a lazy ``RecordBatchReader`` that produces the result in bounded batches.
    """

    name: ClassVar[str]
    params_model: ClassVar[type[BaseModel]]
    ordered_inputs: ClassVar[bool]
    description: ClassVar[str]

    def check_inputs(self, input_uris: Sequence[str]) -> None: ...

    def identity(self, params: BaseModel) -> Any: ...

    def run(
        self, inputs: Sequence[ResolvedInput], params: BaseModel, ctx: RunContext
    ) -> pa.RecordBatchReader: ...


class Share(Protocol):
    """One partition of a partitioned run: picklable, run where a Dask worker is.

    ``reader`` streams this share's rows (the executor's own query over its part of
    the inputs), in a process that may not be the head's; ``bytes`` is what it reads.
    """

    bytes: int

    def reader(self, ctx: RunContext) -> pa.RecordBatchReader: ...


@dataclass(frozen=True, slots=True)
class Partitioned:
    """A run split into ordered shares whose results, concatenated, are the result.

    ``schema`` is the result's schema, fixed once: every share's part is cast to it.
    """

    schema: pa.Schema
    shares: tuple[Share, ...]


@runtime_checkable
class PartitionedExecutor(Protocol):
    """An executor that can split a run into shares (``scan@v1`` over many data files).

    ``partitions`` validates as ``run`` does, then answers the shares, in order,
    about ``target_bytes`` each and at least ``min_parts`` when the inputs allow;
    ``None`` when the run is one share (it then runs in-process, as ``run``).
    """

    def partitions(
        self,
        inputs: Sequence[ResolvedInput],
        params: BaseModel,
        ctx: RunContext,
        *,
        target_bytes: int,
        min_parts: int,
    ) -> Partitioned | None: ...
