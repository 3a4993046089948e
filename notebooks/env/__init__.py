"""Room for a notebook's Python environment, managed with uv (API.md §7, §14.1).

Its job model, the uv runner, lock and sync live here when they land; the
REST routes stay in ``rest/``. Nothing here yet.
"""
