"""Health, readiness, stats and metrics."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from pydantic import BaseModel
from sqlalchemy import text

from services.status.adapters import queries
from services.status.entrypoints.http.auth import Reader
from services.status.entrypoints.http.deps import Res, Resources
from services.status.entrypoints.http.schemas import Stats
from services.status.entrypoints.write_side import METRICS_ENV
from shared import topology
from shared.contracts.jobs import Site
from shared.metrics import JOBS_BY_STATUS

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    database: bool
    broker: bool


@router.get("/healthz", response_model=Health)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _database_ok(res: Resources) -> bool:
    try:
        async with asyncio.timeout(2):
            async with res.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


async def _broker_ok(res: Resources) -> bool:
    try:
        return bool(await res.broker.ping(timeout=2))
    except Exception:
        return False


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "the database or broker is away"}},
)
async def readyz(res: Res, response: Response) -> dict[str, Any]:
    database, broker = await asyncio.gather(_database_ok(res), _broker_ok(res))
    if not (database and broker):
        response.status_code = 503
    return {"database": database, "broker": broker}


@router.get("/stats", response_model=Stats, dependencies=[Reader])
async def stats(res: Res) -> dict[str, Any]:
    """Counts by status and by site (at most 1 s old), and the work queues' depths."""
    cached = res.stats_cache
    if cached and time.monotonic() - cached[0] < res.settings.stats_max_age_seconds:
        return cached[1]
    by_status, by_site = await queries.counts(res.reads)
    queues = {
        name: {"ready": d.ready, "unacked": None, "consumers": d.consumers}
        for name, d in (await res.depths.current()).items()
    }
    body = {"by_status": by_status, "by_site": by_site, "queues": queues}
    for status, n in by_status.items():
        JOBS_BY_STATUS.labels(status).set(n)
    res.stats_cache = (time.monotonic(), body)
    return body


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics() -> Response:
    """This process's metrics, or with the write side in a child process, both processes'
    (prometheus-client's multiprocess mode, write_side.py)."""
    if os.environ.get(METRICS_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


QUEUES_SHOWN = [
    *(topology.work_queue_name(site) for site in Site),
    topology.DEAD_LETTER_QUEUE.name,
    topology.ROUTER_INTAKE.name,
    topology.STATUS_EVENTS.name,
]
