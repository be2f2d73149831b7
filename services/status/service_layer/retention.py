"""Retention: what the status store keeps, and for how long (RETENTION_DAYS).

Terminal jobs whose terminal event is older than the retention, their events and their
dead letters are deleted in small batches (each its own short transaction, so live
projection never waits long for a lock); so are old dead letters, sent outbox rows,
settled groups and old schedule firings. Non-terminal jobs are kept whatever their age.
Runs on the leading replica only (adapters/leader.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from services.status.service_layer.unit_of_work import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger("hybridq.status.retention")
BATCH = 500

Step = Callable[[UnitOfWork, datetime], Awaitable[int]]
STEPS: tuple[Step, ...] = (
    lambda uow, cutoff: uow.jobs.purge_finished(cutoff, BATCH),
    lambda uow, cutoff: uow.dead_letters.purge(cutoff, BATCH),
    lambda uow, cutoff: uow.outbox.purge_sent(cutoff, BATCH),
    lambda uow, cutoff: uow.groups.purge_settled(cutoff, BATCH),
    lambda uow, cutoff: uow.schedules.purge_firings(cutoff, BATCH),
    lambda uow, cutoff: uow.webhooks.purge(cutoff, BATCH),
)


async def purge(units: UnitOfWorkFactory, keep: timedelta, now: datetime) -> int:
    """Delete everything older than `keep`, batch by batch; returns rows deleted."""
    cutoff = now - keep
    total = 0
    for step in STEPS:
        while True:
            async with units() as uow:
                deleted = await step(uow, cutoff)
            total += deleted
            if deleted < BATCH:
                break
    if total:
        log.info("retention deleted %d rows older than %s", total, cutoff.isoformat())
    return total
