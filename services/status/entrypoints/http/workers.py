"""The live worker fleet, from worker heartbeats."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel

from services.status.adapters.read_models import live_workers
from services.status.entrypoints.http.auth import Reader
from services.status.entrypoints.http.deps import Res

router = APIRouter(tags=["workers"])


class RunningOut(BaseModel):
    job_id: UUID
    attempt: int
    job_type: str
    started_at: datetime


class WorkerOut(BaseModel):
    worker: str
    instance: UUID
    site: str
    job_types: list[str]
    concurrency: int
    running: list[RunningOut]
    last_seen: datetime


class WorkerList(BaseModel):
    items: list[WorkerOut]


@router.get("/workers", response_model=WorkerList, dependencies=[Reader])
async def list_workers(res: Res) -> dict[str, Any]:
    """Workers heard from in the last three heartbeat intervals (at least 15 s); `running`
    lists the attempts each was running at its last heartbeat."""
    return {"items": await live_workers(res.reads)}
