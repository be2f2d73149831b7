"""The firer: claims due fire times in the database and publishes their jobs.

Every status replica runs one; none is the leader, and none needs to be:

1. **Claim** (one transaction per schedule): move `next_run_at` on with a compare-and-set
   (`... WHERE next_run_at = <the value read>`) and, only if that changed the row, record
   the firing with its JobSubmitted body in `schedule_firings`. Of replicas racing for the
   same fire time exactly one claim succeeds; the others' UPDATE matches no row.
2. **Publish** (the outbox): firings not yet published are sent to `jobs.intake`
   (persistent, confirmed, mandatory), then marked published. A crash between the two
   publishes again later under the same deterministic job_id, which the router's
   de-duplication skips. Nothing is published that was not first committed.

Catch-up: a schedule whose `next_run_at` is long past (hybridq was down) fires once, for
its latest missed fire time; its next run is the first fire time after now.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.schedules.metrics import FIRING_LAG, FIRINGS, PUBLISHED
from services.status.schedules.store import cadence_of
from services.status.schedules.tables import schedule_firings, schedules
from services.status.schedules.timing import BadCadence, job_id_for
from shared.bus import Bus
from shared.contracts.jobs import JobSubmitted

log = logging.getLogger("hybridq.status.schedules")
Clock = Callable[[], datetime]
PUBLISH_TIMEOUT_SECONDS = 10.0


def utc_now() -> datetime:
    return datetime.now(UTC)


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


async def claim_due(engine: AsyncEngine, now: datetime, limit: int = 100) -> list[Firing]:
    """Claim the firing of every schedule due at `now` (one indexed query finds them)."""
    query = (
        select(schedules)
        .where(schedules.c.enabled, schedules.c.next_run_at <= now)
        .order_by(schedules.c.next_run_at)
        .limit(limit)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    firings = [await _claim(engine, row, now) for row in rows]
    return [f for f in firings if f is not None]


async def publish_pending(engine: AsyncEngine, bus: Bus, limit: int = 100) -> int:
    """Publish claimed firings not yet published, then mark them (the outbox relay).

    The rows stay locked while they are published, so replicas relay different firings;
    if the commit is lost after a publish, the next relay publishes the same job_id again.
    """
    async with engine.begin() as conn:
        rows = (
            await conn.execute(
                select(schedule_firings.c.job_id, schedule_firings.c.body)
                .where(schedule_firings.c.published_at.is_(None))
                .order_by(schedule_firings.c.claimed_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):  # never hold the locks long
            for row in rows:
                await bus.submit(json.dumps(row.body).encode())
        if rows:
            await conn.execute(
                update(schedule_firings)
                .where(schedule_firings.c.job_id.in_([r.job_id for r in rows]))
                .values(published_at=utc_now())
            )
    PUBLISHED.inc(len(rows))
    return len(rows)


class Firer:
    """Polls for due schedules and publishes their jobs, until cancelled."""

    def __init__(
        self, engine: AsyncEngine, bus: Bus, poll_seconds: float, clock: Clock = utc_now
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.poll_seconds = poll_seconds
        self.clock = clock

    async def tick(self) -> int:
        """One round: claim what is due, publish what is claimed. Returns jobs published."""
        await claim_due(self.engine, self.clock())
        return await publish_pending(self.engine, self.bus)

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database or broker away: transient, next round retries
                log.warning("schedule firer round failed", extra={"error": repr(exc)})
            await asyncio.sleep(self.poll_seconds)
