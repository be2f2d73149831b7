"""Retention: what the status store keeps, and for how long (RETENTION_DAYS).

Terminal jobs whose terminal event is older than the retention, their events and their
dead letters are deleted in small batches (each its own short transaction, so live
projection never waits long for a lock); so are old dead letters, sent outbox rows and
settled groups. Non-terminal jobs are kept whatever their age. Runs on the leading
replica only (leader.py).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.projection import TERMINAL
from services.status.tables import dead_letters, group_members, job_events, job_groups, jobs, outbox

log = logging.getLogger("hybridq.status.retention")
BATCH = 500


async def purge(engine: AsyncEngine, keep: timedelta, now: datetime | None = None) -> int:
    """Delete everything older than `keep`, batch by batch; returns rows deleted."""
    cutoff = (now or datetime.now(UTC)) - keep
    total = 0
    for step in (_jobs, _dead_letters, _outbox, _groups):
        while True:
            deleted = await step(engine, cutoff)
            total += deleted
            if deleted < BATCH:
                break
    if total:
        log.info("retention deleted %d rows older than %s", total, cutoff.isoformat())
    return total


async def _jobs(engine: AsyncEngine, cutoff: datetime) -> int:
    async with engine.begin() as conn:
        ids = list(
            await conn.scalars(
                select(jobs.c.job_id)
                .where(jobs.c.status.in_(sorted(TERMINAL)), jobs.c.finished_at < cutoff)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        if ids:
            await conn.execute(delete(job_events).where(job_events.c.job_id.in_(ids)))
            await conn.execute(delete(dead_letters).where(dead_letters.c.job_id.in_(ids)))
            await conn.execute(delete(jobs).where(jobs.c.job_id.in_(ids)))
        return len(ids)


async def _dead_letters(engine: AsyncEngine, cutoff: datetime) -> int:
    async with engine.begin() as conn:
        old = (
            select(dead_letters.c.seq).where(dead_letters.c.dead_lettered_at < cutoff).limit(BATCH)
        )
        result = await conn.execute(delete(dead_letters).where(dead_letters.c.seq.in_(old)))
        return result.rowcount or 0


async def _outbox(engine: AsyncEngine, cutoff: datetime) -> int:
    async with engine.begin() as conn:
        old = select(outbox.c.seq).where(outbox.c.sent_at < cutoff).limit(BATCH)
        result = await conn.execute(delete(outbox).where(outbox.c.seq.in_(old)))
        return result.rowcount or 0


async def _groups(engine: AsyncEngine, cutoff: datetime) -> int:
    async with engine.begin() as conn:
        ids = list(
            await conn.scalars(
                select(job_groups.c.group_id)
                .where(job_groups.c.settled_at < cutoff)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        if ids:
            await conn.execute(delete(group_members).where(group_members.c.group_id.in_(ids)))
            await conn.execute(delete(job_groups).where(job_groups.c.group_id.in_(ids)))
        return len(ids)
