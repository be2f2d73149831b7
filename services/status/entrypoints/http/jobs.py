"""Jobs: submit, view, list, history, live stream, cancel."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Body, HTTPException, Query, Request
from sse_starlette.sse import EventSourceResponse

from services.status.adapters import queries
from services.status.domain.arrivals import Arrival
from services.status.domain.views import JobStatus, JobView
from services.status.entrypoints.http.auth import Admin, Reader
from services.status.entrypoints.http.deps import (
    BackendUnavailable,
    Res,
    backend_trouble,
    policy_error,
    publish_within,
    unavailable,
)
from services.status.entrypoints.http.errors import problems
from services.status.entrypoints.http.schemas import (
    Accepted,
    CancelRequest,
    EventList,
    JobPage,
    SubmitJob,
    Submitted,
    UtcDatetime,
)
from services.status.entrypoints.http.streams import BoundedStream, follow
from services.status.service_layer import operations
from services.status.service_layer.projecting import project
from shared.contracts.jobs import JobSubmitted, JobType, Site

router = APIRouter(tags=["jobs"])
MAX_PAGE = 500


@router.post(
    "/jobs",
    status_code=202,
    response_model=Submitted,
    dependencies=[Reader],
    responses=problems(
        413,
        503,
        _413="body over 1 MiB, or the job's message over 256 KiB",
        _422="invalid, or refused by placement policy (residency, no site runs the type)",
        _503="the broker did not confirm in time; retry with the same job_id",
    ),
)
async def submit_job(res: Res, body: SubmitJob) -> Submitted:
    """Submit a job (published to `jobs.intake`). 422 for invalid or policy-refused jobs."""
    job = JobSubmitted(**{**body.model_dump(), "job_id": body.job_id or uuid4()})
    try:
        await publish_within(res, operations.submission(res.rules, job), "the job")
    except operations.PolicyRefusal as exc:
        raise policy_error(exc) from exc
    except operations.TooLarge as exc:
        raise HTTPException(413, str(exc)) from exc
    except BackendUnavailable as exc:
        raise unavailable(exc) from exc
    return Submitted(job_id=job.job_id)


@router.get(
    "/jobs/{job_id}", response_model=JobView, dependencies=[Reader], responses=problems(404)
)
async def get_job(res: Res, job_id: UUID) -> JobView:
    job = await queries.get_job(res.reads, job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job


@router.get("/jobs", response_model=JobPage, dependencies=[Reader])
async def list_jobs(
    res: Res,
    status: JobStatus | None = None,
    site: Site | None = None,
    job_type: Annotated[JobType | None, Query()] = None,
    parent_id: UUID | None = None,
    schedule_id: UUID | None = None,
    submitted_after: UtcDatetime | None = None,
    submitted_before: UtcDatetime | None = None,
    job_id_prefix: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=36,
            pattern="^[0-9a-fA-F-]+$",
            description="jobs whose id starts with these hex digits (dashes optional)",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, Any]:
    """Newest first; pass `next_cursor` back as `cursor` for the next page."""
    try:
        items, next_cursor = await queries.list_jobs(
            res.reads,
            limit=limit,
            cursor=cursor,
            status=status,
            site=site,
            job_type=job_type,
            parent_id=parent_id,
            submitted_after=submitted_after,
            submitted_before=submitted_before,
            schedule_id=schedule_id,
            job_id_prefix=job_id_prefix,
        )
    except (queries.BadCursor, queries.BadPrefix) as exc:
        raise HTTPException(422, str(exc)) from exc
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/jobs/{job_id}/events",
    response_model=EventList,
    dependencies=[Reader],
    responses=problems(404),
)
async def job_events(res: Res, job_id: UUID) -> dict[str, Any]:
    """Every event of the job, in the order they happened; 404 for a job never seen."""
    history = await queries.job_history(res.reads, job_id)
    if not history and await queries.get_job(res.reads, job_id) is None:
        raise HTTPException(404, f"no job {job_id}")
    return {"items": history}


@router.get(
    "/jobs/{job_id}/stream",
    dependencies=[Reader],
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "lifecycle events as they happen, then `end`",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **problems(429, _429="too many open streams (MAX_STREAMS)"),
    },
)
async def stream_job(res: Res, job_id: UUID, request: Request) -> EventSourceResponse:
    """Server-sent events: each lifecycle event as it is projected, then `end` with the
    final status. Also ends (`end` with status `unknown`) when the job stays unknown for
    STREAM_UNKNOWN_SECONDS, and (`end` with `idle: true`) after STREAM_IDLE_SECONDS
    without a new event. 429 when MAX_STREAMS streams are open on this process."""
    if not res.streams.acquire():
        raise HTTPException(429, f"too many open streams (at most {res.streams.limit})")
    stream = follow(res.reads, res.settings, job_id, request)
    return BoundedStream(stream, release=res.streams.release)


@router.post(
    "/jobs/{job_id}/cancel",
    status_code=202,
    response_model=Accepted,
    dependencies=[Admin],
    responses=problems(404, 409, _409="the job has already ended"),
)
async def cancel_job(
    res: Res, job_id: UUID, body: Annotated[CancelRequest | None, Body()] = None
) -> Accepted:
    """A job not yet started never starts; a running one is asked to stop."""
    reason = (body or CancelRequest()).reason
    try:
        async with res.units() as uow:
            queued = await operations.cancel(uow, job_id, reason)
    except operations.NotFound as exc:
        raise HTTPException(404, f"no job {job_id}") from exc
    except operations.AlreadyTerminal as exc:
        raise HTTPException(409, f"job is already {exc.status.value}") from exc
    except Exception as exc:
        raise unavailable(backend_trouble(exc, "the database did not answer")) from exc
    # answered once the broker has the cancel: workers and routers stop the job from it
    timeout = res.settings.publish_timeout_seconds
    try:
        published = await res.relay.publish(queued.rows, timeout)
    except Exception as exc:
        published = False
        backend_trouble(exc, "")
    if not published:
        detail = (
            f"the cancel is recorded but the broker did not confirm it within {timeout:g} s; "
            "it is published once the broker takes it (retrying is safe)"
        )
        raise unavailable(BackendUnavailable(detail))
    try:  # shown at once; the copy coming back from the bus is a duplicate
        async with res.units() as uow:
            await project(uow, [Arrival(event) for event in queued.events])
    except Exception as exc:
        backend_trouble(exc, "")  # the projection records it from the bus
    return Accepted(job_id=job_id, status="cancelled")
