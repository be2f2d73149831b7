"""Job groups and their members: the saga's repository."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import (
    delete,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.status.adapters.postgres.sql import one_of
from services.status.adapters.tables import (
    group_members,
    job_groups,
    jobs,
)
from services.status.domain.saga import Member
from services.status.domain.views import TERMINAL
from services.status.service_layer.unit_of_work import (
    AlreadyGrouped,
    NewMember,
)


class PgGroups:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, group_id: UUID, members: Sequence[NewMember]) -> None:
        ids = [m.job_id for m in members]
        taken = list(
            await self.conn.scalars(
                select(group_members.c.job_id).where(one_of(group_members.c.job_id, ids))
            )
        )
        if taken:
            raise AlreadyGrouped(taken)
        await self.conn.execute(insert(job_groups).values(group_id=group_id))
        try:
            async with self.conn.begin_nested():  # a racing group took one meanwhile
                await self.conn.execute(
                    insert(group_members).values(
                        [
                            {
                                "group_id": group_id,
                                "job_id": m.job_id,
                                "position": i,
                                "compensation": m.compensation,
                                "data_classification": m.data_classification,
                                "priority": m.priority,
                            }
                            for i, m in enumerate(members)
                        ]
                    )
                )
        except IntegrityError as exc:
            raise AlreadyGrouped(ids) from exc

    async def open_members(self, job_ids: Sequence[UUID]) -> set[UUID]:
        return set(
            await self.conn.scalars(
                select(group_members.c.job_id).where(
                    one_of(group_members.c.job_id, job_ids), group_members.c.outcome.is_(None)
                )
            )
        )

    async def lock_group_of(self, job_id: UUID) -> UUID | None:
        group_id: UUID | None = await self.conn.scalar(
            select(group_members.c.group_id).where(
                group_members.c.job_id == job_id, group_members.c.outcome.is_(None)
            )
        )
        if group_id is not None:  # one decision per group at a time, across replicas
            await self.conn.execute(
                select(job_groups.c.group_id)
                .where(job_groups.c.group_id == group_id)
                .with_for_update()
            )
        return group_id

    async def record_outcome(self, job_id: UUID, outcome: str, site: str | None) -> bool:
        recorded = await self.conn.execute(
            group_members.update()
            .where(group_members.c.job_id == job_id, group_members.c.outcome.is_(None))
            .values(outcome=outcome, site=func.coalesce(site, group_members.c.site))
            .returning(group_members.c.job_id)
        )
        return recorded.first() is not None

    async def members(self, group_id: UUID) -> list[Member]:
        rows = await self.conn.execute(
            select(group_members)
            .where(group_members.c.group_id == group_id)
            .order_by(group_members.c.position)
        )
        return [
            Member(
                r.job_id,
                r.compensation,
                r.compensation_job_id,
                r.outcome,
                r.site,
                r.data_classification,
                r.priority,
            )
            for r in rows
        ]

    async def set_compensation(self, job_id: UUID, compensation_job_id: UUID) -> None:
        await self.conn.execute(
            group_members.update()
            .where(group_members.c.job_id == job_id)
            .values(compensation_job_id=compensation_job_id)
        )

    async def settle(self, group_id: UUID) -> None:
        await self.conn.execute(
            job_groups.update()
            .where(job_groups.c.group_id == group_id)
            .values(settled_at=func.now())
        )

    async def ended_unrecorded(self, limit: int) -> list[tuple[UUID, str, str | None]]:
        query = (
            select(group_members.c.job_id, jobs.c.status, jobs.c.site)
            .join(jobs, jobs.c.job_id == group_members.c.job_id)
            .where(group_members.c.outcome.is_(None), jobs.c.status.in_(sorted(TERMINAL)))
            .limit(limit)
        )
        return [(r.job_id, r.status, r.site) for r in await self.conn.execute(query)]

    async def purge_settled(self, before: datetime, limit: int) -> int:
        ids = list(
            await self.conn.scalars(
                select(job_groups.c.group_id)
                .where(job_groups.c.settled_at < before)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if ids:
            await self.conn.execute(
                delete(group_members).where(one_of(group_members.c.group_id, ids))
            )
            await self.conn.execute(delete(job_groups).where(one_of(job_groups.c.group_id, ids)))
        return len(ids)
