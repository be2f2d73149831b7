"""The FastAPI application: routes, error bodies and middleware (no resources: the
composition root, services/status/bootstrap.py, gives it a lifespan that owns them)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.status.adapters.db_errors import is_backend_error
from services.status.entrypoints.http import dead_letters, insights, jobs, system
from services.status.entrypoints.http import groups as group_routes
from services.status.entrypoints.http import schedules as schedule_routes
from services.status.entrypoints.http import workers as worker_routes
from services.status.entrypoints.http.auth import AuthGate
from services.status.entrypoints.http.limits import BodyLimit
from services.status.entrypoints.http.timing import Timing
from services.status.entrypoints.ui import routes as ui
from shared.settings import StatusSettings

log = logging.getLogger("hybridq.status.http")

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def build(settings: StatusSettings, lifespan: Lifespan) -> FastAPI:
    """The HTTP API and the dashboard; `lifespan` opens and closes what they use."""
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
    app.include_router(insights.router)
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
    """Outermost first: auth (nothing is read for a refused caller), body limits, timing."""

    app.add_middleware(Timing)
    app.add_middleware(BodyLimit)
    app.add_middleware(AuthGate, settings=settings)
