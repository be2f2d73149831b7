"""A failed attempt: retry it later through a delay tier, or dead-letter the job.

Used by the worker for the attempts it runs and by the status service for a long attempt
whose lease lapsed (its worker was lost), so both follow one retry policy.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from shared import topology
from shared.backoff import retry_delay
from shared.bus import Bus, confirmed_together
from shared.contracts.events import JobDeadLettered, JobFailed
from shared.contracts.jobs import PlacedJob
from shared.dead_letters import DeadLetterReason

log = logging.getLogger("hybridq.worker")


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float
    max_seconds: float


async def fail_attempt(
    bus: Bus,
    job: PlacedJob,
    error: str,
    *,
    permanent: bool,
    now: datetime,
    policy: RetryPolicy,
    rng: random.Random,
    event_id: UUID | None = None,
) -> str:
    """Publish JobFailed, then park the next attempt or dead-letter the job."""
    failed_id = event_id or uuid4()
    if not permanent and job.attempt < job.last_attempt:
        wait = retry_delay(job.attempt, policy.base_seconds, policy.max_seconds, rng)
        retry_at = now + timedelta(seconds=wait)
        failed = bus.emit(
            JobFailed(
                event_id=failed_id,
                job_id=job.job_id,
                site=job.site,
                attempt=job.attempt,
                error=error,
                retry_at=retry_at,
            )
        )
        retry = job.model_copy(update={"attempt": job.attempt + 1, "run_at": retry_at})
        await confirmed_together(failed, bus.delay(retry, now))
        log.info(
            "failed; retry scheduled",
            extra={"job_id": str(job.job_id), "attempt": job.attempt, "error": error},
        )
        return "retrying"
    failed = bus.emit(
        JobFailed(
            event_id=failed_id, job_id=job.job_id, site=job.site, attempt=job.attempt, error=error
        )
    )
    reason = DeadLetterReason.PERMANENT_ERROR if permanent else DeadLetterReason.MAX_ATTEMPTS
    await dead_letter(
        bus,
        job.model_dump_json().encode(),
        str(job.job_id),
        topology.work_queue_name(job.site),
        reason,
        error,
        job.attempt,
    )
    await failed
    return "dead_lettered"


async def dead_letter(
    bus: Bus,
    body: bytes,
    job_id: str | None,
    source_queue: str,
    reason: str,
    detail: str,
    attempts: int,
) -> None:
    """Send a job to `jobs.dead-letter` with a reason, and say so (JobDeadLettered)."""
    await bus.dead_letter(
        body, reason=reason, source_queue=source_queue, detail=detail, job_id=job_id
    )
    if job_id is not None:
        await bus.event(JobDeadLettered(job_id=UUID(job_id), reason=reason, attempts=attempts))
