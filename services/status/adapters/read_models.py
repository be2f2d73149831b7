"""Reads of the status store beyond jobs and dead letters: job groups, schedules and the
worker fleet, each as a typed view for the HTTP API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.adapters.queries import get_job, rows
from services.status.adapters.tables import group_members, job_groups, schedule_firings, schedules
from services.status.adapters.tables import workers as workers_table
from services.status.domain.saga import FAILED_MEMBER, GroupStatus, group_status
from services.status.domain.views import JobStatus, JobView

RECENT_JOBS = 10
LIVE_INTERVALS = 3  # a worker not heard from for 3 heartbeat intervals is not listed
MIN_LIVE_SECONDS = 15.0


# -- job groups -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CompensationView(JobView):
    """A compensation job's view, and the member whose work it undoes."""

    compensates: UUID | None = None


@dataclass(frozen=True)
class GroupView:
    group_id: UUID
    status: GroupStatus
    jobs: list[JobView]
    compensations: list[CompensationView] = field(default_factory=list)


def _unseen(job_id: UUID, at: datetime) -> JobView:
    """A job the status service has not heard of yet: just submitted with the group."""
    return JobView(job_id=job_id, updated_at=at)


async def group_view(engine: AsyncEngine, group_id: UUID) -> GroupView | None:
    query = (
        select(group_members, job_groups.c.created_at)
        .join(job_groups, job_groups.c.group_id == group_members.c.group_id)
        .where(group_members.c.group_id == group_id)
        .order_by(group_members.c.position)
    )
    members = list(await rows(engine, query))
    if not members:
        return None
    views = [await get_job(engine, m.job_id) or _unseen(m.job_id, m.created_at) for m in members]
    compensations = []
    for m in members:
        if m.compensation_job_id is not None:
            job = await get_job(engine, m.compensation_job_id)
            seen = job or _unseen(m.compensation_job_id, m.created_at)
            compensations.append(CompensationView(**_fields(seen), compensates=m.job_id))
    failing = any(v.status in FAILED_MEMBER for v in views)
    needed = [
        m
        for m, v in zip(members, views, strict=True)
        if failing and v.status is JobStatus.SUCCEEDED and m.compensation
    ]
    shown = {c.compensates: c.status for c in compensations}
    status = group_status([v.status for v in views], [shown.get(m.job_id) for m in needed])
    return GroupView(group_id, status, views, compensations)


def _fields(view: JobView) -> dict[str, Any]:
    return {name: getattr(view, name) for name in JobView.__dataclass_fields__}


# -- schedules ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScheduleView:
    schedule_id: UUID
    name: str
    cron: str | None
    every_seconds: int | None
    timezone: str
    job: dict[str, Any]
    enabled: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    created_at: datetime
    recent_job_ids: list[UUID]


async def _recent_jobs(engine: AsyncEngine, ids: list[UUID]) -> dict[UUID, list[UUID]]:
    """The newest firings' job ids of each schedule (one query)."""
    ranked = select(
        schedule_firings.c.schedule_id,
        schedule_firings.c.job_id,
        func.row_number()
        .over(
            partition_by=schedule_firings.c.schedule_id,
            order_by=schedule_firings.c.fire_time.desc(),
        )
        .label("n"),
    ).where(schedule_firings.c.schedule_id.in_(ids))
    sub = ranked.subquery()
    query = select(sub.c.schedule_id, sub.c.job_id).where(sub.c.n <= RECENT_JOBS).order_by(sub.c.n)
    recent: dict[UUID, list[UUID]] = {i: [] for i in ids}
    for schedule_id, job_id in await rows(engine, query):
        recent[schedule_id].append(job_id)
    return recent


async def list_schedules(
    engine: AsyncEngine, schedule_id: UUID | None = None
) -> list[ScheduleView]:
    """Schedules (oldest first), each with its recent job ids, newest first."""
    query = select(schedules).order_by(schedules.c.created_at, schedules.c.schedule_id)
    if schedule_id is not None:
        query = query.where(schedules.c.schedule_id == schedule_id)
    found = await rows(engine, query)
    recent = await _recent_jobs(engine, [r.schedule_id for r in found]) if found else {}
    return [
        ScheduleView(
            schedule_id=r.schedule_id,
            name=r.name,
            cron=r.cron,
            every_seconds=r.every_seconds,
            timezone=r.timezone,
            job=r.job,
            enabled=r.enabled,
            next_run_at=r.next_run_at,
            last_run_at=r.last_run_at,
            created_at=r.created_at,
            recent_job_ids=recent[r.schedule_id],
        )
        for r in found
    ]


async def get_schedule(engine: AsyncEngine, schedule_id: UUID) -> ScheduleView | None:
    found = await list_schedules(engine, schedule_id)
    return found[0] if found else None


# -- the worker fleet ---------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerView:
    worker: str
    instance: UUID
    site: str
    job_types: list[str]
    concurrency: int
    running: list[dict[str, Any]]
    last_seen: datetime


async def live_workers(engine: AsyncEngine) -> list[WorkerView]:
    """Workers heard from within LIVE_INTERVALS heartbeat intervals, by site and name."""
    w = workers_table
    window = func.greatest(w.c.interval_seconds * LIVE_INTERVALS, MIN_LIVE_SECONDS)
    query = (
        select(w)
        .where(w.c.last_seen >= func.now() - window * text("interval '1 second'"))
        .order_by(w.c.site, w.c.worker, w.c.instance)
    )
    return [
        WorkerView(r.worker, r.instance, r.site, r.job_types, r.concurrency, r.running, r.last_seen)
        for r in await rows(engine, query)
    ]
