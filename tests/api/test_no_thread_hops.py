"""FastAPI runs a plain `def` endpoint or dependency in a worker thread: a thread hand-off,
and contention for the interpreter lock, on every request. The status API has none."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from services.status.bootstrap import create_app
from shared.settings import StatusSettings


def _is_async(call: Any) -> bool:
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
        getattr(call, "__call__", None)  # noqa: B004 -- a class instance as a dependency
    )


def _sync_calls(dependant: Dependant) -> list[str]:
    found = []
    for sub in dependant.dependencies:
        if sub.call is not None and not _is_async(sub.call):
            found.append(getattr(sub.call, "__qualname__", repr(sub.call)))
        found += _sync_calls(sub)
    return found


def _api_routes(routes: list[BaseRoute]) -> Iterator[APIRoute]:
    """Every APIRoute, those of included routers too (FastAPI keeps them apart)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes)


def test_every_endpoint_and_dependency_runs_on_the_event_loop() -> None:
    app = create_app(StatusSettings())
    threaded = {}
    routes = list(_api_routes(app.routes))
    assert any(r.path == "/jobs/{job_id}" for r in routes)
    for route in routes:
        calls = _sync_calls(route.dependant)
        if not _is_async(route.endpoint):
            calls.append(route.endpoint.__qualname__)
        if calls:
            threaded[f"{sorted(route.methods)} {route.path}"] = calls
    assert not threaded, f"run in a worker thread per request: {threaded}"
