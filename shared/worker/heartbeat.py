"""A worker announces itself every HEARTBEAT_SECONDS (`worker.heartbeat` on `jobs.events`):
who it is, what it runs, what it is running now. The status service lists the fleet
(`GET /workers`) and renews the leases of the long attempts listed."""

from __future__ import annotations

import asyncio
import logging

from shared.bus import Bus
from shared.contracts.workers import WorkerHeartbeat
from shared.worker.runner import Runner

log = logging.getLogger("hybridq.worker.heartbeat")


class Heartbeat:
    def __init__(
        self, bus: Bus, runner: Runner, job_types: list[str], concurrency: int, interval: float
    ) -> None:
        self.bus = bus
        self.runner = runner
        self.job_types = sorted(job_types)
        self.concurrency = concurrency
        self.interval = interval

    def message(self) -> WorkerHeartbeat:
        return WorkerHeartbeat(
            worker=self.runner.worker_name,
            instance=self.runner.instance,
            site=self.runner.site,
            job_types=self.job_types,
            concurrency=self.concurrency,
            running=list(self.runner.attempts.values()),
            interval_seconds=self.interval,
        )

    async def beat(self) -> None:
        # expires unread after a few intervals: a stale heartbeat is worth nothing
        await self.bus.worker_message(self.message(), expiration=max(30.0, 3 * self.interval))

    async def run(self) -> None:
        while True:
            try:
                await self.beat()
            except Exception as exc:  # the broker away: the next beat tries again
                log.warning("heartbeat not published: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.interval)
