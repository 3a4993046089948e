"""The FastAPI application factory. Routers are passed their domain objects."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, FastAPI

from quiver import __version__
from rest import errors


def create_app(routers: Iterable[APIRouter] = ()) -> FastAPI:
    """Build the app from routers; each router got its dependencies when it was made."""
    app = FastAPI(title="Quiver", version=__version__)
    errors.install(app)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    for router in routers:
        app.include_router(router)
    return app
