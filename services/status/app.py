"""The status service's composition root: settings -> engine, broker -> FastAPI app."""

from __future__ import annotations

import asyncio
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

from services.status import groups
from services.status.api import dead_letters, jobs, system
from services.status.api import groups as group_routes
from services.status.api.deps import Resources
from services.status.consumers import subscribe
from services.status.projector import Projector
from shared import topology
from shared.bus import Bus, make_broker
from shared.contracts.events import (
    AnyEvent,
)
from shared.metrics import API_LATENCY
from shared.placement.rules import load_rules
from shared.queue_depth import QueueDepths
from shared.settings import StatusSettings

MAX_BODY_BYTES = 1024 * 1024


def create_app(settings: StatusSettings | None = None) -> FastAPI:
    settings = settings or StatusSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rules = load_rules(settings.routing_rules)  # a bad rules file stops start-up first
        engine = create_async_engine(settings.database_url, pool_pre_ping=True, pool_size=10)
        broker = make_broker(settings.amqp_url, settings.batch_size)
        bus = Bus(broker)

        async def after_commit(events: list[AnyEvent]) -> None:
            await groups.on_projected(engine, bus, events)

        projector = Projector(
            engine, settings.batch_size, settings.batch_wait_seconds, on_commit=after_commit
        )
        depths = QueueDepths(
            settings.amqp_url, system.QUEUES_SHOWN, settings.stats_max_age_seconds / 2
        )
        subscribe(broker, bus, projector, engine, settings.work_queue_type)
        await projector.start()
        await broker.connect()
        await topology.declare(broker, topology.status_bindings(settings.work_queue_type))
        await broker.start()
        await depths.start()
        sweeper = asyncio.create_task(groups.sweep(engine, bus), name="groups-sweep")
        app.state.resources = Resources(settings, engine, broker, bus, rules, depths, projector)
        try:
            yield
        finally:
            sweeper.cancel()
            await broker.stop()
            await projector.stop()
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
    app.include_router(system.router)
    _errors(app)
    _middleware(app)
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


def _middleware(app: FastAPI) -> None:
    @app.middleware("http")
    async def limits_and_latency(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return JSONResponse({"detail": "request body over 1 MiB"}, status_code=413)
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        API_LATENCY.labels(
            request.method, getattr(route, "path", "unmatched"), str(response.status_code)
        ).observe(time.perf_counter() - started)
        return response
