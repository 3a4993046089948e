"""``python -m quiver``: the same as the ``quiver`` command."""

from __future__ import annotations

from quiver.cli import run

if __name__ == "__main__":
    run()
