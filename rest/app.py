"""The FastAPI application: routers are passed their domain objects; the edge is wired here.

``create_app(routers)`` builds a bare app (tests of one router use it);
``app_from_settings(settings, flight_uri=...)`` is what ``quiver serve`` and
``quiver rest`` run: the core and notebook routers over one Flight client,
wrapped in the request-id, metrics, auth and body-limit middleware.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from fastapi import APIRouter, FastAPI

from flight import QuiverClient, root_certificates
from foundation import Settings, __version__
from rest import errors, openapi
from rest.artifacts import artifacts_router
from rest.core import core_router
from rest.fastpath import MaterializeFastPath, RenditionFastPath
from rest.link import FlightLink
from rest.logs import LogRing, logs_router
from rest.mcp import McpEndpoint
from rest.metrics import Metrics, MetricsMiddleware
from rest.middleware import ASGIApp, BearerAuth, BodyLimit, RequestId
from rest.names import names_router
from rest.ops import ops_router
from rest.registry import registry_router
from rest.renditions import rendition_router
from rest.uploads import upload_router
from rest.web import web_router

Lifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]


def create_app(
    routers: Iterable[APIRouter] = (),
    *,
    lifespan: Lifespan | None = None,
    settings: Settings | None = None,
) -> FastAPI:
    """Build the app from routers; each router got its dependencies when it was made.
    With ``settings``, its document states their token and body limits."""
    app = FastAPI(title="Quiver", version=__version__, lifespan=lifespan)
    errors.install(app)
    if settings is None:
        openapi.install(app)
    else:
        request_limit = min(settings.rest_max_request_bytes, settings.rest_max_body_bytes)
        limits = (request_limit, settings.rest_max_body_bytes)
        openapi.install(app, bearer=settings.token is not None, body_limits=limits)

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, str]:
        """Liveness: the REST process answers (no auth)."""
        return {"status": "ok"}

    for router in routers:
        app.include_router(router)
    return app


def with_middleware(
    app: ASGIApp, settings: Settings, metrics: Metrics, link: FlightLink | None = None
) -> ASGIApp:
    """Outermost first: request id, metrics, bearer auth, body limit (and, given the
    Flight link, the fast paths of ``POST /v1/materialize`` and of the renditions).

    They wrap the FastAPI app from outside (not ``add_middleware``) so that even
    the 500s of Starlette's outermost error middleware get an ``X-Request-ID``
    and are counted.
    """
    token = settings.token.get_secret_value() if settings.token is not None else None
    if link is not None:
        app = RenditionFastPath(MaterializeFastPath(app, link, metrics), link.renditions)
    inner = BodyLimit(app, settings.rest_max_body_bytes, settings.rest_max_request_bytes)
    return RequestId(MetricsMiddleware(BearerAuth(inner, token), metrics))


def flight_client(settings: Settings, flight_uri: str) -> QuiverClient:
    """The REST layer's Flight connection, with this server's own credentials."""
    token = settings.token.get_secret_value() if settings.token is not None else None
    roots = root_certificates(settings, flight_uri)
    kwargs: dict[str, Any] = {} if roots is None else {"tls_root_certs": roots}
    return QuiverClient(flight_uri, token=token, **kwargs)


def notebook_routes(
    settings: Settings, flight_uri: str
) -> tuple[APIRouter, Callable[[], None], McpEndpoint]:
    """The notebook router, what closes it, and the MCP endpoint over the same sessions.
    The one place that knows their constructors."""
    from notebooks import Executions, FlightConfig, NotebookManager
    from rest.notebook_ai import ai_routes
    from rest.notebooks import notebook_router
    from rest.workers import worker_model
    from rest.ws_hub import Hub

    token = settings.token.get_secret_value() if settings.token is not None else None
    manager = NotebookManager(settings)
    workers = worker_model(settings)
    executions = Executions(manager, FlightConfig(flight_uri, token), workers=workers)
    hub = Hub()
    ai = ai_routes(manager, settings, executions, hub)
    router = notebook_router(
        manager, settings, executions=executions, hub=hub, ws_extra=ai.ws, extra=ai.routes
    )

    def close() -> None:
        ai.close()
        executions.close()
        workers.close()
        manager.close_all()

    return router, close, ai.mcp


def app_from_settings(settings: Settings, *, flight_uri: str) -> ASGIApp:
    """The whole REST app over the Flight server at ``flight_uri`` (``quiver serve``/``rest``)."""
    client = flight_client(settings, flight_uri)
    link = FlightLink(client, in_process=settings.rest_in_process_flight)
    metrics = Metrics()
    notebooks, close_notebooks, mcp = notebook_routes(settings, flight_uri)
    ring = LogRing()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logging.getLogger().addHandler(ring)  # the Logs page's records (GET /v1/logs)
        try:
            async with mcp.running():
                yield
        finally:
            logging.getLogger().removeHandler(ring)
            with contextlib.suppress(Exception):
                close_notebooks()
            client.close()

    # The registry's /v1/names/{name}/aliases/... routes before core's /v1/names/{name:path}.
    routers = [
        registry_router(link, settings),
        rendition_router(link.renditions),
        core_router(link, metrics),
        artifacts_router(link),
        names_router(link),
        upload_router(link),
    ]
    mcp_route = APIRouter()  # before the web UI's routes, which take the rest of the paths
    mcp_route.add_route("/mcp", mcp, include_in_schema=False)
    app = create_app(
        [
            *routers,
            ops_router(link, metrics),
            logs_router(ring),
            notebooks,
            mcp_route,
            web_router(settings),
        ],
        lifespan=lifespan,
        settings=settings,
    )
    return with_middleware(app, settings, metrics, link)
