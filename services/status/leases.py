"""Long attempts' leases: a lease its worker stopped renewing means the attempt was lost.

A worker runs an attempt longer than the broker's consumer timeout under a lease instead
of an unacked delivery (docs/design.md, "Long attempts"). Every few seconds this sweep
takes the leases not renewed for their `lease_seconds`: if the job's view still shows
that attempt running, the attempt counts as interrupted (JobFailed, then a retry or a dead
letter, as a worker would); otherwise the attempt ended and the lease is only tidied.
Rows are taken `FOR UPDATE SKIP LOCKED` and deleted in the transaction that published
their outcome, so several status replicas never take one lease twice. After a start or a
database error the sweep waits one lease period, so heartbeats held up meanwhile are
recorded before anything is judged lapsed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import UTC, datetime
from uuid import NAMESPACE_URL, uuid5

from sqlalchemy import and_, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.tables import jobs, leases
from services.status.workers import forget_old_workers
from shared.bus import Bus
from shared.contracts.jobs import PlacedJob
from shared.worker.failing import RetryPolicy, fail_attempt

log = logging.getLogger("hybridq.status.leases")
SWEEP_SECONDS = 2.0
INTERRUPTED = "attempt interrupted: its worker stopped renewing the lease (lost or stopped)"


async def sweep(engine: AsyncEngine, bus: Bus, healthy_for: float, rng: random.Random) -> int:
    """Judge lapsed leases; returns how many attempts were interrupted."""
    lapsed = leases.c.renewed_at < func.now() - leases.c.lease_seconds * text("interval '1 second'")
    running = and_(
        jobs.c.job_id == leases.c.job_id,
        jobs.c.status == "running",
        jobs.c.attempts == leases.c.attempt,
    )
    query = (
        select(leases, running.label("still_running"))
        .select_from(leases.outerjoin(jobs, jobs.c.job_id == leases.c.job_id))
        .where(lapsed, leases.c.lease_seconds <= healthy_for)
        .with_for_update(of=leases, skip_locked=True)
        .limit(100)
    )
    interrupted = 0
    async with engine.begin() as conn:
        for row in (await conn.execute(query)).all():
            if row.still_running:
                job = PlacedJob.model_validate(row.job)
                await fail_attempt(
                    bus,
                    job,
                    INTERRUPTED,
                    permanent=False,
                    now=datetime.now(UTC),
                    policy=RetryPolicy(row.retry_base_seconds, row.retry_max_seconds),
                    rng=rng,
                    event_id=uuid5(NAMESPACE_URL, f"hybridq:{job.job_id}:{job.attempt}:lease"),
                )
                interrupted += 1
                log.warning(
                    "lease lapsed: attempt interrupted",
                    extra={"job_id": str(job.job_id), "attempt": job.attempt, "worker": row.worker},
                )
            await conn.execute(
                leases.delete().where(
                    leases.c.job_id == row.job_id,
                    leases.c.attempt == row.attempt,
                    leases.c.instance == row.instance,
                )
            )
    return interrupted


async def sweep_forever(engine: AsyncEngine, bus: Bus, every: float = SWEEP_SECONDS) -> None:
    rng = random.Random()
    healthy_since = time.monotonic()
    forgot_at = 0.0
    while True:
        try:
            await sweep(engine, bus, time.monotonic() - healthy_since, rng)
            if time.monotonic() - forgot_at > 3600:
                await forget_old_workers(engine)
                forgot_at = time.monotonic()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("lease sweep failed; trying again", exc_info=True)
            healthy_since = time.monotonic()
        await asyncio.sleep(every)
