"""The FastAPI facade: thin routes over the Flight client and the notebook domain.

The public door: :func:`app_from_settings` (what ``quiver serve`` and ``quiver
rest`` run) and :func:`create_app` (a bare app, for one router's tests). Routes
validate, call the domain, and map errors once (``rest/errors.py``).
"""

from __future__ import annotations

from rest.app import app_from_settings, create_app
from rest.server import PromptServer

__all__ = ["PromptServer", "app_from_settings", "create_app"]
