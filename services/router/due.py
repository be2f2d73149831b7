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

from .intake import routed_event

log = logging.getLogger("hybridq.router.due")

SHORTEST_TIER_SECONDS = topology.DELAY_TIERS[0].ttl_ms / 1000


class DueJobs:
    def __init__(
        self,
        bus: Bus,
        cancellations: Cancellations,
        clock: Callable[[], datetime],
        workers: WorkerUsers | None = None,
    ) -> None:
        self.bus = bus
        self.cancellations = cancellations
        self.clock = clock
        self.workers = workers or WorkerUsers()

    async def handle(self, body: bytes, source_queue: str, publisher: str | None = None) -> str:
        """`publisher`: the message's validated `user_id` (kept through the delay tiers)."""
        try:
            job = PlacedJob.model_validate_json(body)
        except ValidationError as exc:
            await self.bus.dead_letter(
                body, reason=DeadLetterReason.SCHEMA, source_queue=source_queue, detail=str(exc)
            )
            return "dead_lettered"
        if not self.workers.may_speak_for(publisher, job.site):
            # a worker parked a job for another site: refused, and no event, so that such
            # a message cannot end or change the job it names
            await self.bus.dead_letter(
                body,
                reason=DeadLetterReason.FORBIDDEN,
                source_queue=source_queue,
                detail=f"{publisher} may not park a job for the {job.site.value} site",
            )
            return "forbidden"
        if self.cancellations.is_cancelled(job.job_id):
            log.info("cancelled while waiting: dropped", extra={"job_id": str(job.job_id)})
            return "cancelled"
        now = self.clock()
        remaining = (job.run_at - now).total_seconds() if job.run_at else 0.0
        if remaining >= SHORTEST_TIER_SECONDS:
            await self.bus.delay(job, now)
            return "waiting"
        if remaining > 0:  # less than the shortest tier: wait it out here (< 0.1 s)
            await asyncio.sleep(remaining)
        if job.announce:
            await self.bus.event(routed_event(job))
            job = job.model_copy(update={"announce": False})
        await self.bus.dispatch(job)
        log.info(
            "dispatched",
            extra={"job_id": str(job.job_id), "site": job.site.value, "attempt": job.attempt},
        )
        return "dispatched"
