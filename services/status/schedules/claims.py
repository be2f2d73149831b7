"""Claiming a due firing: a compare-and-set on `next_run_at`, and the firing recorded in
the same transaction (so exactly one of racing replicas claims a fire time)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy import ColumnElement, and_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.schedules.metrics import FIRING_LAG, FIRINGS
from services.status.schedules.store import cadence_of
from services.status.schedules.tables import schedule_firings, schedules
from services.status.schedules.timing import BadCadence, job_id_for
from shared.contracts.jobs import JobSubmitted

log = logging.getLogger("hybridq.status.schedules")


@dataclass(frozen=True)
class Firing:
    schedule_id: UUID
    job_id: UUID
    fire_time: datetime


def _body(job: dict[str, Any], job_id: UUID) -> dict[str, Any] | None:
    try:
        return JobSubmitted(**job, job_id=job_id).model_dump(mode="json")
    except ValidationError as exc:  # validated at creation; only a schema change gets here
        log.error("schedule job template no longer valid", extra={"error": str(exc)})
        return None


async def _claim(engine: AsyncEngine, row: Any, now: datetime) -> Firing | None:
    cadence = cadence_of(row)
    try:
        fire = cadence.latest_due(row.next_run_at, now)
        next_run_at = cadence.next_after(fire)  # a period stays on its grid
        if next_run_at <= now:
            next_run_at = cadence.next_after(now)
    except BadCadence as exc:  # a cron with no future time: stop it, say why
        extra = {"schedule_id": str(row.schedule_id), "error": str(exc)}
        log.error("schedule stopped", extra=extra)
        fire, next_run_at = row.next_run_at, None
    job_id = job_id_for(row.schedule_id, fire)
    body = _body(row.job, job_id)
    async with engine.begin() as conn:
        claimed = await conn.execute(
            update(schedules)
            .where(
                schedules.c.schedule_id == row.schedule_id,
                schedules.c.enabled,
                schedules.c.next_run_at == row.next_run_at,  # the compare-and-set
            )
            .values(next_run_at=next_run_at, last_run_at=fire)
        )
        if claimed.rowcount != 1:
            return None  # another replica claimed it, or it was paused or deleted
        if body is not None:
            await conn.execute(
                insert(schedule_firings)
                .values(
                    job_id=job_id,
                    schedule_id=row.schedule_id,
                    fire_time=fire,
                    claimed_at=now,
                    body=body,
                )
                .on_conflict_do_nothing()
            )
    FIRINGS.labels("caught_up" if fire > row.next_run_at else "on_time").inc()
    FIRING_LAG.observe(max(0.0, (now - fire).total_seconds()))
    return Firing(row.schedule_id, job_id, fire) if body is not None else None


def due_at(now: datetime) -> ColumnElement[bool]:
    """The schedules due at `now` (the partial index `ix_schedules_due`)."""
    return and_(schedules.c.enabled, schedules.c.next_run_at <= now)


async def claim_due(engine: AsyncEngine, now: datetime, limit: int = 100) -> list[Firing]:
    """Claim the firing of every schedule due at `now` (one indexed query finds them)."""
    query = select(schedules).where(due_at(now)).order_by(schedules.c.next_run_at).limit(limit)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    firings = [await _claim(engine, row, now) for row in rows]
    return [f for f in firings if f is not None]
