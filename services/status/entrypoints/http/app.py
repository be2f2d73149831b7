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
from services.status.entrypoints.http import (
    bulk,
    dead_letters,
    events,
    insights,
    jobs,
    openapi,
    system,
)
from services.status.entrypoints.http import groups as group_routes
from services.status.entrypoints.http import schedules as schedule_routes
from services.status.entrypoints.http import webhooks as webhook_routes
from services.status.entrypoints.http import workers as worker_routes
from services.status.entrypoints.http.auth import AuthGate
from services.status.entrypoints.http.errors import error_body
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
    app.include_router(bulk.router)
    app.include_router(jobs.router)
    app.include_router(events.router)
    app.include_router(dead_letters.router)
    app.include_router(group_routes.router)
    app.include_router(schedule_routes.router)
    app.include_router(worker_routes.router)
    app.include_router(webhook_routes.router)
    app.include_router(system.router)
    app.include_router(insights.router)
    app.include_router(ui.router)
    _errors(app)
    _middleware(app, settings)
    openapi.install(app, settings)
    return app


LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def _field(loc: tuple[Any, ...]) -> str:
    """`("body", "jobs", 0, "job_type")` -> `jobs.0.job_type`; the body itself `(body)`."""
    parts = loc[1:] if loc and loc[0] in LOCATIONS else loc
    return ".".join(str(p) for p in parts) or "(body)"


def _field_error(error: dict[str, Any]) -> tuple[str, str]:
    if error["type"] == "json_invalid":
        reason = error.get("ctx", {}).get("error", "")
        position = error["loc"][1] if len(error["loc"]) > 1 else 0
        return "(body)", f"the body is not valid JSON: {reason} at character {position}"
    return _field(tuple(error["loc"])), error["msg"]


def _errors(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_field_error(e) for e in exc.errors()]
        detail = errors[0][1] if len(errors) == 1 else f"{len(errors)} fields are invalid"
        return JSONResponse(error_body(detail, errors), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = exc.detail if isinstance(exc.detail, dict) else error_body(str(exc.detail))
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        """The last resort: broker or database trouble is 503 (try again); anything else
        is a bug, logged with its trace (the tests make sure no client input gets here)."""
        if is_backend_error(exc):
            return JSONResponse(
                error_body("the database or broker did not answer; try again"),
                status_code=503,
                headers={"Retry-After": "5"},
            )
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(error_body("internal error"), status_code=500)


def _middleware(app: FastAPI, settings: StatusSettings) -> None:
    """Outermost first: auth (nothing is read for a refused caller), body limits, timing."""

    app.add_middleware(Timing)
    app.add_middleware(BodyLimit)
    app.add_middleware(AuthGate, settings=settings)
