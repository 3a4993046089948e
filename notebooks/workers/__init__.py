"""Room for workers: running a cell on a Dask cluster or another Quiver node (API.md §8).

The worker catalog with its health probes and the backends live here when they
land; the runner dispatches to them. Nothing here yet.
"""
