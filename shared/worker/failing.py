"""A failed attempt, as the worker publishes it (the rule: shared/retries.py), and a job the
worker refuses outright, dead-lettered with its reason."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from shared.bus import Bus, confirmed_together
from shared.contracts.jobs import PlacedJob
from shared.dead_letters import dead_lettered_event
from shared.holding import through_trouble
from shared.retries import RetryPolicy, plan_failure

log = logging.getLogger("hybridq.worker")


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
    alive: Callable[[], bool] | None = None,
) -> str:
    """Publish what the failure leads to (shared/retries.py), all confirmed together.
    `alive`: the delivery of the attempt can still be settled; while it can, the same
    messages (same ids) are published again through broker trouble (shared/holding.py)."""
    failure = plan_failure(
        job, error, permanent=permanent, now=now, policy=policy, rng=rng, event_id=event_id
    )

    async def publish() -> None:
        await confirmed_together(
            bus.emit(*failure.events), *(bus.send(m) for m in failure.messages)
        )

    if alive is None:
        await publish()
    else:
        await through_trouble(publish, alive, f"failure of job {job.job_id}")
    log.info(
        "failed; retry scheduled" if failure.outcome == "retrying" else "failed; dead-lettered",
        extra={"job_id": str(job.job_id), "attempt": job.attempt, "error": error},
    )
    return failure.outcome


async def dead_letter(
    bus: Bus,
    body: bytes,
    job_id: str | None,
    source_queue: str,
    reason: str,
    detail: str,
    attempts: int,
) -> None:
    """Send a job to `jobs.dead-letter` with a reason, and say so (JobDeadLettered). The
    status service derives the same event from the dead letter (same id, same fields), so
    the job's history shows one ending whichever of the two it records first."""
    sent = await bus.dead_letter(
        body, reason=reason, source_queue=source_queue, detail=detail, job_id=job_id
    )
    if job_id is not None:
        await bus.event(dead_lettered_event(sent, UUID(job_id), reason, detail, attempts))
