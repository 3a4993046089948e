"""Owner gating (API.md §1): who is asking, and may they see this notebook?

When ``personal_mode_user_header`` is configured, the transport puts the
header's value in :data:`caller` for the duration of a request; a notebook
whose ``notebook.toml`` has an ``owner`` is then visible only to that caller,
and to everyone else it does not exist (404, never 403). Notebooks without an
owner, and servers without the header configured, are not gated.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

caller: ContextVar[str | None] = ContextVar("quiver_notebook_caller", default=None)


def visible(owner: Any, gated: bool) -> bool:
    """Whether a notebook with ``owner`` is visible to the current caller."""
    if not gated or not owner:
        return True
    return caller.get() == str(owner)
