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
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.schedules.claims import claim_due, due_at
from services.status.schedules.outbox import UNPUBLISHED, publish_pending
from services.status.schedules.tables import schedule_firings, schedules
from shared.bus import Bus

log = logging.getLogger("hybridq.status.schedules")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


async def anything_to_do(engine: AsyncEngine, now: datetime) -> bool:
    """Whether a schedule is due at `now` or a claimed firing is not yet published."""
    due = select(schedules.c.schedule_id).where(due_at(now))
    unpublished = select(schedule_firings.c.job_id).where(UNPUBLISHED)
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        return bool(await autocommit.scalar(select(or_(exists(due), exists(unpublished)))))


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
        """One round: claim what is due, publish what is claimed. Returns jobs published.

        Most rounds find nothing to do: one autocommit statement (two indexed `EXISTS`)
        says so, instead of the claim's and the outbox's transactions (six round trips,
        twice a second, on every status replica)."""
        now = self.clock()
        if not await anything_to_do(self.engine, now):
            return 0
        await claim_due(self.engine, now)
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
