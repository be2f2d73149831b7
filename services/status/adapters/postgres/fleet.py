"""Attempt leases and the worker fleet's heartbeats."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import (
    and_,
    delete,
    func,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.status.adapters.tables import (
    jobs,
    leases,
    workers,
)
from services.status.domain.views import JobStatus
from services.status.service_layer.unit_of_work import (
    Lease,
)
from shared.contracts.jobs import PlacedJob
from shared.contracts.workers import AttemptLeased, WorkerHeartbeat


class PgLeases:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, message: AttemptLeased) -> None:
        await self.conn.execute(
            insert(leases)
            .values(
                job_id=message.job.job_id,
                attempt=message.job.attempt,
                instance=message.instance,
                worker=message.worker,
                job=message.job.model_dump(mode="json"),
                lease_seconds=message.lease_seconds,
                retry_base_seconds=message.retry_base_seconds,
                retry_max_seconds=message.retry_max_seconds,
                renewed_at=func.now(),
            )
            .on_conflict_do_nothing()
        )

    async def renew(self, instance: UUID, held: Sequence[tuple[UUID, int]]) -> None:
        await self.conn.execute(
            update(leases)
            .where(
                leases.c.instance == instance, tuple_(leases.c.job_id, leases.c.attempt).in_(held)
            )
            .values(renewed_at=func.now())
        )

    async def release(self, job_id: UUID, attempt: int, instance: UUID) -> None:
        await self.conn.execute(
            delete(leases).where(
                leases.c.job_id == job_id,
                leases.c.attempt == attempt,
                leases.c.instance == instance,
            )
        )

    async def lapsed(self, healthy_for: float, limit: int) -> list[Lease]:
        lapsed = leases.c.renewed_at < func.now() - leases.c.lease_seconds * text(
            "interval '1 second'"
        )
        running = and_(
            jobs.c.job_id == leases.c.job_id,
            jobs.c.status == JobStatus.RUNNING.value,
            jobs.c.attempts == leases.c.attempt,
        )
        query = (
            select(leases, running.label("still_running"))
            .select_from(leases.outerjoin(jobs, jobs.c.job_id == leases.c.job_id))
            .where(lapsed, leases.c.lease_seconds <= healthy_for)
            .with_for_update(of=leases, skip_locked=True)
            .limit(limit)
        )
        return [
            Lease(
                job=PlacedJob.model_validate(r.job),
                instance=r.instance,
                worker=r.worker,
                retry_base_seconds=r.retry_base_seconds,
                retry_max_seconds=r.retry_max_seconds,
                still_running=bool(r.still_running),
            )
            for r in await self.conn.execute(query)
        ]

    async def delete(self, lease: Lease) -> None:
        await self.release(lease.job.job_id, lease.job.attempt, lease.instance)


class PgWorkers:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def heartbeat(self, message: WorkerHeartbeat) -> None:
        values: dict[str, Any] = {
            "worker": message.worker,
            "site": message.site.value,
            "job_types": message.job_types,
            "concurrency": message.concurrency,
            "running": [r.model_dump(mode="json") for r in message.running],
            "interval_seconds": message.interval_seconds,
            "last_seen": func.now(),
        }
        stmt = insert(workers).values(instance=message.instance, **values)
        await self.conn.execute(
            stmt.on_conflict_do_update(index_elements=["instance"], set_=values)
        )

    async def forget(self, older_than_days: float) -> None:
        await self.conn.execute(
            delete(workers).where(
                workers.c.last_seen < func.now() - text(f"interval '{float(older_than_days)} days'")
            )
        )
