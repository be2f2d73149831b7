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
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.status import leases, outbox, redrives, workers
from services.status.api import dead_letters, jobs, system
from services.status.api import groups as group_routes
from services.status.api import schedules as schedule_routes
from services.status.api import workers as worker_routes
from services.status.api.auth import AuthGate
from services.status.api.deps import Resources
from services.status.api.limits import BodyLimit
from services.status.api.streams import StreamSlots
from services.status.background import start_background, stop_background
from services.status.consumers import subscribe
from services.status.db_errors import is_backend_error
from services.status.projector import Projector
from services.status.schedules.firer import Firer
from services.status.ui import routes as ui
from shared import topology
from shared.bus import Bus, make_broker
from shared.metrics import API_LATENCY
from shared.placement.rules import load_rules
from shared.queue_depth import QueueDepths
from shared.settings import StatusSettings
from shared.tasks import cancel_and_wait

log = logging.getLogger("hybridq.status.http")
RELAY_EVERY_SECONDS = 5.0


def create_app(settings: StatusSettings | None = None) -> FastAPI:
    settings = settings or StatusSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rules = load_rules(settings.routing_rules)  # a bad rules file stops start-up first
        engine = create_async_engine(settings.database_url, pool_pre_ping=True, pool_size=10)
        # the projection's own pool, without the pre-ping round trip per transaction: a
        # connection lost with the database fails its batch, which is held and retried
        # (db_errors.db_retrying) on a new connection
        projection_engine = create_async_engine(settings.database_url, pool_size=2)
        broker = make_broker(settings.amqp_url, settings.batch_size)
        bus = Bus(broker)

        projector = Projector(
            projection_engine,
            settings.batch_size,
            settings.batch_wait_seconds,
            hold_seconds=settings.db_hold_seconds,
            relay=lambda: outbox.relay(engine, bus),
        )
        depths = QueueDepths(
            settings.amqp_url, system.QUEUES_SHOWN, settings.stats_max_age_seconds / 2
        )
        kind = settings.work_queue_type
        events = subscribe(broker, bus, projector, engine, settings.db_hold_seconds, kind)
        workers.subscribe(broker, bus, engine, kind)
        await projector.start()
        await broker.connect()
        await topology.declare(broker, topology.status_bindings(settings.work_queue_type))
        await broker.start()
        await events.start()
        await depths.start()
        background = start_background(engine, bus, settings)
        firer = Firer(engine, bus, settings.schedule_poll_seconds)
        firing = asyncio.create_task(firer.run(), name="schedule-firer")
        lease_sweeper = asyncio.create_task(leases.sweep_forever(engine, bus), name="leases")
        relay = asyncio.create_task(_relay_redrives(engine, bus), name="redrive-relay")
        app.state.resources = Resources(
            settings,
            engine,
            broker,
            bus,
            rules,
            depths,
            projector,
            StreamSlots(settings.max_streams),
        )
        try:
            yield
        finally:
            await stop_background(background)
            await cancel_and_wait(
                [firing, lease_sweeper, relay]
            )  # no publish after the broker stops
            await events.stop()
            await broker.stop()
            await projector.stop()
            await depths.stop()
            await engine.dispose()
            await projection_engine.dispose()

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


async def _relay_redrives(engine: AsyncEngine, bus: Bus) -> None:
    """Publish claimed redrives whose publish failed (or whose process died) earlier."""
    while True:
        await asyncio.sleep(RELAY_EVERY_SECONDS)
        try:
            await redrives.relay(engine, bus)
        except Exception:  # database away: next round
            log.warning("redrive relay failed; retrying", exc_info=True)


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
