"""Schedules in the status store: create, read, pause/resume, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.queries import rows
from services.status.schedules.tables import schedule_firings, schedules
from services.status.schedules.timing import Cadence

RECENT_JOBS = 10
FIELDS = (
    "schedule_id",
    "name",
    "cron",
    "every_seconds",
    "timezone",
    "job",
    "enabled",
    "next_run_at",
    "last_run_at",
    "created_at",
)


def cadence_of(row: Any) -> Cadence:
    m = row._mapping
    return Cadence(cron=m["cron"], every_seconds=m["every_seconds"], timezone=m["timezone"])


async def create(
    engine: AsyncEngine,
    *,
    name: str,
    cadence: Cadence,
    job: dict[str, Any],
    enabled: bool,
    now: datetime,
) -> tuple[UUID, datetime | None]:
    schedule_id = uuid4()
    next_run_at = cadence.next_after(now) if enabled else None
    async with engine.begin() as conn:
        await conn.execute(
            schedules.insert().values(
                schedule_id=schedule_id,
                name=name,
                cron=cadence.cron,
                every_seconds=cadence.every_seconds,
                timezone=cadence.timezone,
                job=job,
                enabled=enabled,
                next_run_at=next_run_at,
            )
        )
    return schedule_id, next_run_at


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
) -> list[dict[str, Any]]:
    """Schedules (oldest first), each with its recent job ids, newest first."""
    query = select(schedules).order_by(schedules.c.created_at, schedules.c.schedule_id)
    if schedule_id is not None:
        query = query.where(schedules.c.schedule_id == schedule_id)
    found = await rows(engine, query)
    recent = await _recent_jobs(engine, [r.schedule_id for r in found]) if found else {}
    return [
        {**{k: r._mapping[k] for k in FIELDS}, "recent_job_ids": recent[r.schedule_id]}
        for r in found
    ]


async def get(engine: AsyncEngine, schedule_id: UUID) -> dict[str, Any] | None:
    found = await list_schedules(engine, schedule_id)
    return found[0] if found else None


async def set_enabled(engine: AsyncEngine, schedule_id: UUID, enabled: bool, now: datetime) -> bool:
    """Pause (no next run) or resume (next run: the first fire time after now; what fell
    in the pause is skipped). Resuming a running schedule changes nothing. False: unknown."""
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                select(schedules).where(schedules.c.schedule_id == schedule_id).with_for_update()
            )
        ).first()
        if row is None:
            return False
        if row.enabled == enabled:
            return True
        next_run_at = cadence_of(row).next_after(now) if enabled else None
        await conn.execute(
            update(schedules)
            .where(schedules.c.schedule_id == schedule_id)
            .values(enabled=enabled, next_run_at=next_run_at)
        )
    return True


async def delete_schedule(engine: AsyncEngine, schedule_id: UUID) -> bool:
    """Delete the schedule and its firings not yet published (those published stay: the
    jobs they made keep their schedule_id). False: unknown."""
    async with engine.begin() as conn:
        gone = await conn.execute(delete(schedules).where(schedules.c.schedule_id == schedule_id))
        await conn.execute(
            delete(schedule_firings).where(
                schedule_firings.c.schedule_id == schedule_id,
                schedule_firings.c.published_at.is_(None),
            )
        )
    return bool(gone.rowcount)
