"""The outbox: submissions written in the transaction that decides them, published after.

Group creation and the saga coordinator write the JobSubmitted messages they call for into
`outbox` in the same transaction as their own rows, so a crash between commit and publish
loses nothing. The relay publishes unsent rows (persistent, confirmed) and marks them sent
in one transaction; rows another replica is relaying are skipped (`FOR UPDATE SKIP LOCKED`),
so every replica can relay. A crash after the publish and before the commit publishes the
row again: harmless, job ids are deterministic and the router skips a duplicate JobSubmitted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.status.tables import outbox
from shared.bus import Bus
from shared.contracts.jobs import JobSubmitted

log = logging.getLogger("hybridq.status.outbox")
BATCH = 100


async def add(conn: AsyncConnection, jobs: Sequence[JobSubmitted]) -> None:
    """Queue submissions in the caller's transaction."""
    if jobs:
        await conn.execute(
            outbox.insert().values(
                [{"message_id": str(j.job_id), "body": j.model_dump_json().encode()} for j in jobs]
            )
        )


async def relay(engine: AsyncEngine, bus: Bus) -> int:
    """Publish unsent rows until none is left; returns how many were published."""
    total = 0
    while True:
        async with engine.begin() as conn:
            rows = list(
                await conn.execute(
                    select(outbox.c.seq, outbox.c.body)
                    .where(outbox.c.sent_at.is_(None))
                    .order_by(outbox.c.seq)
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
            )
            for row in rows:
                await bus.submit(row.body)
            if rows:
                await conn.execute(
                    outbox.update()
                    .where(outbox.c.seq.in_([r.seq for r in rows]))
                    .values(sent_at=func.now())
                )
        total += len(rows)
        if len(rows) < BATCH:
            return total
