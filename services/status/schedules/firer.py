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

from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.schedules.claims import claim_due
from services.status.schedules.outbox import publish_pending
from shared.bus import Bus

log = logging.getLogger("hybridq.status.schedules")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


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
