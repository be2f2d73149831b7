"""Dead letters: recorded, chosen and claimed for a redrive, purged."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime

from sqlalchemy import (
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.status.adapters.postgres.sql import texts
from services.status.adapters.tables import (
    dead_letters,
)
from services.status.domain.dead_letters import DeadLetter
from services.status.domain.redrive import Candidate
from services.status.service_layer.unit_of_work import (
    RedriveSelection,
)


class PgDeadLetters:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, letter: DeadLetter) -> bool:
        values = asdict(letter)
        for transient in ("attempts", "publisher", "ending"):
            values.pop(transient)
        result = await self.conn.execute(
            insert(dead_letters)
            .values(values)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(dead_letters.c.seq)
        )
        return result.first() is not None

    async def candidates(self, selection: RedriveSelection) -> list[Candidate]:
        query = select(dead_letters.c.id, dead_letters.c.reason, dead_letters.c.body).where(
            dead_letters.c.redriven_at.is_(None)
        )
        if selection.ids is not None:
            query = query.where(texts(dead_letters.c.id, selection.ids))
        if selection.reason is not None:
            query = query.where(dead_letters.c.reason == selection.reason)
        if selection.job_type is not None:
            query = query.where(dead_letters.c.job_type == selection.job_type)
        query = query.order_by(dead_letters.c.seq).limit(selection.limit)
        return [Candidate(r.id, r.reason, r.body) for r in await self.conn.execute(query)]

    async def claim(self, ids: Sequence[str]) -> list[str]:
        claimed = await self.conn.execute(
            update(dead_letters)
            .where(texts(dead_letters.c.id, ids), dead_letters.c.redriven_at.is_(None))
            .values(redriven_at=func.now())
            .returning(dead_letters.c.id, dead_letters.c.seq)
        )
        return [row.id for row in sorted(claimed, key=lambda r: r.seq)]

    async def purge(self, before: datetime, limit: int) -> int:
        old = select(dead_letters.c.seq).where(dead_letters.c.dead_lettered_at < before)
        result = await self.conn.execute(
            delete(dead_letters).where(dead_letters.c.seq.in_(old.limit(limit)))
        )
        return result.rowcount or 0
