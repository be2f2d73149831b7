"""Jobs: submit, view, list, history, live stream, cancel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Body, HTTPException, Query, Request
from sse_starlette.sse import EventSourceResponse

from services.status import operations, queries
from services.status.api.auth import Admin, Reader
from services.status.api.deps import Res, policy_error
from services.status.api.schemas import (
    Accepted,
    CancelRequest,
    EventList,
    JobPage,
    JobViewOut,
    SubmitJob,
    Submitted,
)
from services.status.projection import STATUSES, TERMINAL
from shared.contracts.jobs import JobSubmitted

router = APIRouter(tags=["jobs"])
MAX_PAGE = 500


@router.post("/jobs", status_code=202, response_model=Submitted, dependencies=[Reader])
async def submit_job(res: Res, body: SubmitJob) -> Submitted:
    """Submit a job (published to `jobs.intake`). 422 for invalid or policy-refused jobs."""
    job = JobSubmitted(**{**body.model_dump(), "job_id": body.job_id or uuid4()})
    try:
        await operations.submit(res.bus, res.rules, job)
    except operations.PolicyRefusal as exc:
        raise policy_error(exc) from exc
    return Submitted(job_id=job.job_id)


@router.get("/jobs/{job_id}", response_model=JobViewOut, dependencies=[Reader])
async def get_job(res: Res, job_id: UUID) -> dict[str, Any]:
    job = await queries.get_job(res.engine, job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job


@router.get("/jobs", response_model=JobPage, dependencies=[Reader])
async def list_jobs(
    res: Res,
    status: Annotated[str | None, Query(description=f"one of {', '.join(STATUSES)}")] = None,
    site: Annotated[str | None, Query(pattern="^(public|private)$")] = None,
    job_type: str | None = None,
    parent_id: Annotated[UUID | None, Query(description="the children of this job")] = None,
    submitted_after: datetime | None = None,
    submitted_before: datetime | None = None,
    schedule_id: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Newest first; pass `next_cursor` back as `cursor` for the next page."""
    if status is not None and status not in STATUSES:
        raise HTTPException(422, f"status must be one of {', '.join(STATUSES)}")
    try:
        items, next_cursor = await queries.list_jobs(
            res.engine,
            limit=limit,
            cursor=cursor,
            status=status,
            site=site,
            job_type=job_type,
            parent_id=parent_id,
            submitted_after=submitted_after,
            submitted_before=submitted_before,
            schedule_id=schedule_id,
        )
    except queries.BadCursor as exc:
        raise HTTPException(422, str(exc)) from exc
    return {"items": items, "next_cursor": next_cursor}


@router.get("/jobs/{job_id}/events", response_model=EventList, dependencies=[Reader])
async def job_events(res: Res, job_id: UUID) -> dict[str, Any]:
    """Every event of the job, in the order they happened."""
    return {"items": await queries.job_history(res.engine, job_id)}


@router.get("/jobs/{job_id}/stream", dependencies=[Reader])
async def stream_job(res: Res, job_id: UUID, request: Request) -> EventSourceResponse:
    """Server-sent events: each lifecycle event as it is projected, until the job ends."""

    async def events() -> AsyncIterator[dict[str, str]]:
        sent: set[str] = set()
        while not await request.is_disconnected():
            # the view first: events and view commit together, so a history read after a
            # terminal view holds every event up to the end
            job = await queries.get_job(res.engine, job_id)
            for event in await queries.job_history(res.engine, job_id):
                if event["event_id"] not in sent:
                    sent.add(event["event_id"])
                    yield {"event": event["type"], "data": json.dumps(event)}
            if job is not None and job["status"] in TERMINAL:
                yield {"event": "end", "data": json.dumps({"status": job["status"]})}
                return
            await asyncio.sleep(0.25)

    return EventSourceResponse(events())


@router.post(
    "/jobs/{job_id}/cancel", status_code=202, response_model=Accepted, dependencies=[Admin]
)
async def cancel_job(
    res: Res, job_id: UUID, body: Annotated[CancelRequest | None, Body()] = None
) -> Accepted:
    """A job not yet started never starts; a running one is asked to stop."""
    try:
        await operations.cancel(res.engine, res.bus, job_id, (body or CancelRequest()).reason)
    except operations.NotFound as exc:
        raise HTTPException(404, f"no job {job_id}") from exc
    except operations.AlreadyTerminal as exc:
        raise HTTPException(409, f"job is already {exc}") from exc
    return Accepted(job_id=job_id, status="cancelled")
