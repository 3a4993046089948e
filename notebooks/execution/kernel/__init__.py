"""Kernels: one worker subprocess per session, run with the notebook's own interpreter.

The public door: :class:`KernelProcess` (the server's side) and :class:`KernelDied`.
The worker (``worker.py``) runs by its path in the notebook's interpreter and
imports nothing of Quiver's: only its neighbour ``cellrun.py``, which runs a cell
(a Dask task runs that file's source too).
"""

from __future__ import annotations

from notebooks.execution.kernel.process import KernelDied, KernelProcess

__all__ = ["KernelDied", "KernelProcess"]
