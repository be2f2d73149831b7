"""Schedules and their firings."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    and_,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.status.adapters.tables import (
    schedule_firings,
    schedules,
)
from services.status.domain.schedules import Cadence
from services.status.service_layer.unit_of_work import (
    Schedule,
)


def _schedule(row: Any) -> Schedule:
    m = row._mapping
    return Schedule(
        schedule_id=m["schedule_id"],
        name=m["name"],
        cadence=Cadence(cron=m["cron"], every_seconds=m["every_seconds"], timezone=m["timezone"]),
        job=m["job"],
        enabled=m["enabled"],
        next_run_at=m["next_run_at"],
        last_run_at=m["last_run_at"],
    )


def due_at(now: datetime) -> ColumnElement[bool]:
    """The schedules due at `now` (the partial index `ix_schedules_due`)."""
    return and_(schedules.c.enabled, schedules.c.next_run_at <= now)


class PgSchedules:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, schedule: Schedule) -> None:
        await self.conn.execute(
            schedules.insert().values(
                schedule_id=schedule.schedule_id,
                name=schedule.name,
                cron=schedule.cadence.cron,
                every_seconds=schedule.cadence.every_seconds,
                timezone=schedule.cadence.timezone,
                job=schedule.job,
                enabled=schedule.enabled,
                next_run_at=schedule.next_run_at,
            )
        )

    async def get(self, schedule_id: UUID, *, for_update: bool = False) -> Schedule | None:
        query = select(schedules).where(schedules.c.schedule_id == schedule_id)
        row = (await self.conn.execute(query.with_for_update() if for_update else query)).first()
        return _schedule(row) if row is not None else None

    async def set_enabled(
        self, schedule_id: UUID, enabled: bool, next_run_at: datetime | None
    ) -> None:
        await self.conn.execute(
            update(schedules)
            .where(schedules.c.schedule_id == schedule_id)
            .values(enabled=enabled, next_run_at=next_run_at)
        )

    async def delete(self, schedule_id: UUID) -> bool:
        gone = await self.conn.execute(
            delete(schedules).where(schedules.c.schedule_id == schedule_id)
        )
        return bool(gone.rowcount)

    async def due(self, now: datetime, limit: int) -> list[Schedule]:
        query = select(schedules).where(due_at(now)).order_by(schedules.c.next_run_at).limit(limit)
        return [_schedule(r) for r in await self.conn.execute(query)]

    async def claim(
        self, schedule: Schedule, next_run_at: datetime | None, fired: datetime
    ) -> bool:
        claimed = await self.conn.execute(
            update(schedules)
            .where(
                schedules.c.schedule_id == schedule.schedule_id,
                schedules.c.enabled,
                schedules.c.next_run_at == schedule.next_run_at,  # the compare-and-set
            )
            .values(next_run_at=next_run_at, last_run_at=fired)
        )
        return claimed.rowcount == 1

    async def add_firing(self, schedule_id: UUID, job_id: UUID, fire_time: datetime) -> None:
        await self.conn.execute(
            insert(schedule_firings)
            .values(
                job_id=job_id,
                schedule_id=schedule_id,
                fire_time=fire_time,
                claimed_at=func.now(),
            )
            .on_conflict_do_nothing()
        )

    async def purge_firings(self, before: datetime, limit: int) -> int:
        old = select(schedule_firings.c.job_id).where(schedule_firings.c.fire_time < before)
        result = await self.conn.execute(
            delete(schedule_firings).where(schedule_firings.c.job_id.in_(old.limit(limit)))
        )
        return result.rowcount or 0
