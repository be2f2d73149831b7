"""Redrive at most once per dead letter, even under concurrent requests or replicas.

A redrive first *claims* its dead letters in the database (`redriven_at` set only where
it is still NULL, so of two concurrent requests exactly one gets each letter) and, in the
same transaction, writes what must follow -- the `JobRedriven` event and the placed job --
to `redrive_outbox`. Only after that commit does the relay record the event, publish it
and dispatch the job, then delete the outbox row. A failed publish leaves the row, and
the relay (after the request, and every few seconds in the background) tries again:
nothing claimed is lost, and nothing is dispatched by two relays at once (rows are
locked with SKIP LOCKED while they are published).
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from sqlalchemy import Column, DateTime, Table, Text, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.store import apply_events
from services.status.tables import dead_letters, metadata
from shared.bus import Bus
from shared.contracts.events import JobRedriven
from shared.contracts.jobs import PlacedJob

log = logging.getLogger("hybridq.status.redrive")

redrive_outbox = Table(
    "redrive_outbox",
    metadata,
    Column("dead_letter_id", Text, primary_key=True),
    Column("job_id", PgUUID(as_uuid=True), nullable=False),
    Column("event", JSONB, nullable=False),
    Column("job", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


def redriven_event_id(dead_letter_id: str) -> UUID:
    """One JobRedriven per dead letter, whoever publishes it and however often."""
    return uuid5(NAMESPACE_URL, f"hybridq:redrive:{dead_letter_id}")


async def claim(engine: AsyncEngine, planned: dict[str, tuple[JobRedriven, PlacedJob]]) -> int:
    """Mark the dead letters redriven where nobody has yet, and queue what follows.

    Returns how many this call claimed (the others were taken by someone else)."""
    if not planned:
        return 0
    async with engine.begin() as conn:
        claimed = await conn.execute(
            update(dead_letters)
            .where(dead_letters.c.id == func.any(bindparam("ids", type_=ARRAY(Text))))
            .where(dead_letters.c.redriven_at.is_(None))
            .values(redriven_at=func.now())
            .returning(dead_letters.c.id),
            {"ids": list(planned)},
        )
        ids = [row.id for row in claimed]
        if ids:
            await conn.execute(
                redrive_outbox.insert(),
                [
                    {
                        "dead_letter_id": i,
                        "job_id": planned[i][0].job_id,
                        "event": planned[i][0].model_dump(mode="json"),
                        "job": planned[i][1].model_dump(mode="json"),
                    }
                    for i in ids
                ],
            )
    return len(ids)


async def relay(engine: AsyncEngine, bus: Bus, limit: int = 100) -> int:
    """Record and publish what claims queued; rows whose publish fails stay for next time."""
    async with engine.begin() as conn:
        rows = (
            await conn.execute(
                select(redrive_outbox)
                .order_by(redrive_outbox.c.created_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        done: list[str] = []
        for row in rows:
            try:
                await _publish(engine, bus, row._mapping)
            except Exception:  # broker or database away: the row stays, retried later
                log.warning("redrive relay: publish failed, will retry", exc_info=True)
                break
            done.append(row.dead_letter_id)
        if done:  # deleted in the same commit that releases the row locks
            await conn.execute(
                delete(redrive_outbox).where(redrive_outbox.c.dead_letter_id.in_(done))
            )
    return len(done)


async def _publish(engine: AsyncEngine, bus: Bus, row: Any) -> None:
    event = JobRedriven.model_validate(row["event"])
    await apply_events(engine, [event])  # idempotent: a deterministic event id
    await bus.event(event)
    await bus.dispatch(PlacedJob.model_validate(row["job"]))
