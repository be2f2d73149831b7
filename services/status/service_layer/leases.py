"""Long attempts' leases: a lease its worker stopped renewing means the attempt was lost.

A worker runs an attempt longer than the broker's consumer timeout under a lease instead of
an unacked delivery (docs/design.md, "Long attempts"). Each sweep takes the leases not
renewed for their `lease_seconds`: if the job's view still shows that attempt running, the
attempt counts as interrupted, exactly as a worker would fail it (JobFailed, then a retry or
a dead letter), queued in the outbox in the transaction that deletes the lease, so status
replicas never take one lease twice. After a start or a database error the caller passes a
short `healthy_for`, so heartbeats held up meanwhile are recorded before a lease is judged.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime

from services.status.domain.ids import lease_interrupted_event_id
from services.status.service_layer.unit_of_work import UnitOfWork
from shared import messages
from shared.contracts.batches import STATUS_SOURCE
from shared.retries import RetryPolicy, plan_failure

log = logging.getLogger("hybridq.status.leases")
INTERRUPTED = "attempt interrupted: its worker stopped renewing the lease (lost or stopped)"
SWEEP_BATCH = 100


async def sweep(uow: UnitOfWork, healthy_for: float, now: datetime, rng: random.Random) -> int:
    """Judge lapsed leases; returns how many attempts were interrupted."""
    interrupted = 0
    for lease in await uow.leases.lapsed(healthy_for, SWEEP_BATCH):
        if lease.still_running:
            job = lease.job
            failure = plan_failure(
                job,
                INTERRUPTED,
                permanent=False,
                now=now,
                policy=RetryPolicy(lease.retry_base_seconds, lease.retry_max_seconds),
                rng=rng,
                event_id=lease_interrupted_event_id(job.job_id, job.attempt),
            )
            origin = f"lease:{job.job_id}:{job.attempt}"
            for envelope in messages.event_batches(failure.events, STATUS_SOURCE):
                await uow.outbox.add(envelope, origin)
            for envelope in failure.messages:
                await uow.outbox.add(envelope, origin)
            interrupted += 1
            log.warning(
                "lease lapsed: attempt interrupted",
                extra={"job_id": str(job.job_id), "attempt": job.attempt, "worker": lease.worker},
            )
        await uow.leases.delete(lease)
    return interrupted
