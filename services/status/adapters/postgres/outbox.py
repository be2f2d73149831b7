"""The outbox port: messages queued in the unit of work's transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    delete,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from services.status.adapters.tables import (
    outbox,
)
from shared.messages import Envelope


class PgOutbox:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.added = 0

    async def add(self, envelope: Envelope, origin: str | None = None) -> int:
        seq: int = await self.conn.scalar(
            outbox.insert()
            .values(
                message_id=envelope.message_id,
                exchange=envelope.exchange,
                routing_key=envelope.routing_key,
                body=envelope.body,
                priority=envelope.priority,
                headers=envelope.headers,
                expiration=envelope.expiration,
                origin=origin,
            )
            .returning(outbox.c.seq)
        )
        self.added += 1
        return seq

    async def withdraw(self, origin: str) -> int:
        gone = await self.conn.execute(
            delete(outbox).where(outbox.c.origin == origin, outbox.c.sent_at.is_(None))
        )
        return gone.rowcount or 0

    async def purge_sent(self, before: datetime, limit: int) -> int:
        old = select(outbox.c.seq).where(outbox.c.sent_at < before).limit(limit)
        result = await self.conn.execute(delete(outbox).where(outbox.c.seq.in_(old)))
        return result.rowcount or 0
