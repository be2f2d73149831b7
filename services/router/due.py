"""Delay machinery: a parked job whose tier expired either waits again or is dispatched."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from pydantic import ValidationError

from shared import topology
from shared.bus import Bus
from shared.cancellations import Cancellations
from shared.contracts.jobs import PlacedJob
from shared.dead_letters import DeadLetterReason
from shared.identity import WorkerUsers

from .dedup import Ledger, dispatch_key
from .intake import Outcome, counted, placed_with_events, routed_event

log = logging.getLogger("hybridq.router.due")

SHORTEST_TIER_SECONDS = topology.DELAY_TIERS[0].ttl_ms / 1000


class DueJobs:
    def __init__(
        self,
        bus: Bus,
        cancellations: Cancellations,
        ledger: Ledger,
        clock: Callable[[], datetime],
        workers: WorkerUsers | None = None,
    ) -> None:
        self.bus = bus
        self.cancellations = cancellations
        self.ledger = ledger
        self.clock = clock
        self.workers = workers or WorkerUsers()

    async def handle(
        self,
        body: bytes,
        source_queue: str,
        publisher: str | None = None,
        *,
        redelivered: bool = False,
    ) -> Outcome:
        """`publisher`: the message's validated `user_id` (kept through the delay tiers)."""
        try:
            job = PlacedJob.model_validate_json(body)
        except ValidationError as exc:
            await self.bus.dead_letter(
                body, reason=DeadLetterReason.SCHEMA, source_queue=source_queue, detail=str(exc)
            )
            return counted(Outcome.DEAD_LETTERED, DeadLetterReason.SCHEMA)
        if not self.workers.may_speak_for(publisher, job.site):
            # a worker parked a job for another site: refused, and no event, so that such
            # a message cannot end or change the job it names
            await self.bus.dead_letter(
                body,
                reason=DeadLetterReason.FORBIDDEN,
                source_queue=source_queue,
                detail=f"{publisher} may not park a job for the {job.site.value} site",
            )
            return counted(Outcome.FORBIDDEN)
        if self.cancellations.is_cancelled(job.job_id):
            log.info("cancelled while waiting: dropped", extra={"job_id": str(job.job_id)})
            return counted(Outcome.CANCELLED)
        now = self.clock()
        remaining = (job.run_at - now).total_seconds() if job.run_at else 0.0
        if remaining >= SHORTEST_TIER_SECONDS:
            await self.bus.delay(job, now, same_park=True)
            return counted(Outcome.WAITING)
        # Due: dispatch each (job_id, attempt) once, however often its message arrives.
        key = dispatch_key(job.job_id, job.attempt, job.park_id)
        if not await self.ledger.acquire(key, redelivered=redelivered):
            log.info("duplicate due message: not dispatched again", extra={"key": key})
            return counted(Outcome.DUPLICATE)
        try:
            await self._dispatch(job, remaining)
        except BaseException:
            await self.ledger.release(key)
            raise
        await self.ledger.finish(key)
        log.info(
            "dispatched",
            extra={"job_id": str(job.job_id), "site": job.site.value, "attempt": job.attempt},
        )
        return counted(Outcome.DISPATCHED)

    async def _dispatch(self, job: PlacedJob, remaining: float) -> None:
        if remaining > 0:  # less than the shortest tier: wait it out here (< 0.1 s)
            await asyncio.sleep(remaining)
        if job.announce:
            job = job.model_copy(update={"announce": False})
            await placed_with_events(self.bus, self.bus.dispatch(job), routed_event(job))
            return
        await self.bus.dispatch(job)
