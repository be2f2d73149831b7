"""The status service's composition root: settings -> engine, broker -> FastAPI app."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.status.api import dead_letters, jobs, system
from services.status.api import groups as group_routes
from services.status.api import schedules as schedule_routes
from services.status.api import workers as worker_routes
from services.status.api.auth import AuthGate
from services.status.api.deps import Resources
from services.status.api.limits import BodyLimit
from services.status.api.streams import StreamSlots
from services.status.consuming import Consuming
from services.status.db_errors import is_backend_error
from services.status.ui import routes as ui
from shared.bus import Bus, make_broker
from shared.metrics import API_LATENCY
from shared.placement.rules import load_rules
from shared.queue_depth import QueueDepths
from shared.settings import StatusSettings

log = logging.getLogger("hybridq.status.http")
RELAY_EVERY_SECONDS = 5.0


def create_app(settings: StatusSettings | None = None) -> FastAPI:
    settings = settings or StatusSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rules = load_rules(settings.routing_rules)  # a bad rules file stops start-up first
        # consumers, projection and background tasks: their own thread, loop, connection
        # and pools (consuming.py), so a burst of events never queues API requests
        consuming = Consuming(settings)
        await asyncio.to_thread(consuming.start)
        engine = create_async_engine(settings.database_url, pool_pre_ping=True, pool_size=10)
        broker = make_broker(settings.amqp_url, settings.batch_size)  # publishes only
        bus = Bus(broker)
        depths = QueueDepths(
            settings.amqp_url, system.QUEUES_SHOWN, settings.stats_max_age_seconds / 2
        )
        try:
            await broker.connect()
            await depths.start()
        except BaseException:
            await consuming.stopped()
            raise
        app.state.resources = Resources(
            settings,
            engine,
            broker,
            bus,
            rules,
            depths,
            StreamSlots(settings.max_streams),
        )
        try:
            yield
        finally:
            await consuming.stopped(settings.drain_seconds)
            await broker.stop()
            await depths.stop()
            await engine.dispose()

    # API docs served from the package, not a CDN: private networks often have no internet
    app = FastAPIOffline(
        title="hybridq status API",
        version="1",
        description="Where every hybridq job is and why. See README and docs/.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(jobs.router)
    app.include_router(dead_letters.router)
    app.include_router(group_routes.router)
    app.include_router(schedule_routes.router)
    app.include_router(worker_routes.router)
    app.include_router(system.router)
    app.include_router(ui.router)
    _errors(app)
    _middleware(app, settings)
    return app


def _errors(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(p) for p in e["loc"] if p != "body") or "(body)",
                "message": e["msg"],
            }
            for e in exc.errors()
        ]
        return JSONResponse({"detail": "invalid request", "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body: Any = exc.detail if isinstance(exc.detail, dict) else {"detail": exc.detail}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        """The last resort: broker or database trouble is 503 (try again); anything else
        is a bug, logged with its trace (the tests make sure no client input gets here)."""
        if is_backend_error(exc):
            return JSONResponse(
                {"detail": "the database or broker did not answer; try again"},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error"}, status_code=500)


def _middleware(app: FastAPI, settings: StatusSettings) -> None:
    """Outermost first: auth (nothing is read for a refused caller), body limits, latency."""

    @app.middleware("http")
    async def latency(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        API_LATENCY.labels(
            request.method, getattr(route, "path", "unmatched"), str(response.status_code)
        ).observe(time.perf_counter() - started)
        return response

    app.add_middleware(BodyLimit)
    app.add_middleware(AuthGate, settings=settings)
