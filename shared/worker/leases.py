"""The worker's side of long attempts: taking and releasing leases (docs/design.md,
"Long attempts"). Heartbeats renew them; the status service judges lapsed ones."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from uuid import UUID

from shared.bus import Bus
from shared.contracts.jobs import PlacedJob, Site
from shared.contracts.workers import AttemptLeased, AttemptReleased
from shared.retries import RetryPolicy

log = logging.getLogger("hybridq.worker")


@dataclass(frozen=True)
class Leasing:
    """When an attempt runs under a lease instead of an unacked delivery."""

    after_seconds: float = 1500.0  # attempts whose timeout is longer (consumer timeout: 30 min)
    lease_seconds: float = 60.0  # not renewed by a heartbeat for this long: interrupted


@dataclass
class Leases:
    bus: Bus
    worker: str
    instance: UUID
    site: Site
    leasing: Leasing
    policy: RetryPolicy
    held: set[UUID] = field(default_factory=set)

    def needed(self, timeout: float) -> bool:
        return timeout > self.leasing.after_seconds

    async def take(self, job: PlacedJob) -> None:
        """Publish the lease (confirmed); the caller then settles the delivery."""
        await self.bus.worker_message(
            AttemptLeased(
                worker=self.worker,
                instance=self.instance,
                site=self.site,
                job=job,
                lease_seconds=self.leasing.lease_seconds,
                retry_base_seconds=self.policy.base_seconds,
                retry_max_seconds=self.policy.max_seconds,
            )
        )
        self.held.add(job.job_id)
        log.info("attempt runs under a lease", extra={"job_id": str(job.job_id)})

    async def release(self, job: PlacedJob) -> None:
        if job.job_id not in self.held:
            return
        self.held.discard(job.job_id)
        try:
            await self.bus.worker_message(
                AttemptReleased(
                    worker=self.worker,
                    instance=self.instance,
                    site=self.site,
                    job_id=job.job_id,
                    attempt=job.attempt,
                )
            )
        except Exception:  # no longer renewed either: the status service tidies it up
            log.exception("lease release not published", extra={"job_id": str(job.job_id)})
