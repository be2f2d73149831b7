"""The firings' outbox relay: publish what was claimed and committed, then mark it."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.schedules.metrics import PUBLISHED
from services.status.schedules.tables import schedule_firings
from shared.bus import Bus

PUBLISH_TIMEOUT_SECONDS = 10.0


UNPUBLISHED = schedule_firings.c.published_at.is_(None)
"""Claimed firings whose job is not yet published (the partial index
`ix_schedule_firings_unpublished`)."""


async def publish_pending(engine: AsyncEngine, bus: Bus, limit: int = 100) -> int:
    """Publish claimed firings not yet published, then mark them (the outbox relay).

    The rows stay locked while they are published, so replicas relay different firings;
    if the commit is lost after a publish, the next relay publishes the same job_id again.
    """
    async with engine.begin() as conn:
        rows = (
            await conn.execute(
                select(schedule_firings.c.job_id, schedule_firings.c.body)
                .where(UNPUBLISHED)
                .order_by(schedule_firings.c.claimed_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):  # never hold the locks long
            for row in rows:
                await bus.submit(json.dumps(row.body).encode())
        if rows:
            await conn.execute(
                update(schedule_firings)
                .where(schedule_firings.c.job_id.in_([r.job_id for r in rows]))
                .values(published_at=datetime.now(UTC))
            )
    PUBLISHED.inc(len(rows))
    return len(rows)
