"""The saga coordinator's decisions: record how a member ended and, in the same
transaction, queue the compensations that calls for (outbox).

Once a member is `dead_lettered`, `cancelled` or `rejected`, every member that succeeded
(now or later) gets its compensation job, with a deterministic `job_id`, on the member's
site and classification (a confidential member's compensation stays private). Endings come
from the coordinator's own queue (coordinator.py), from the dead-letter consumer, and from
the sweep below (endings that never reach the bus).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.status import outbox
from services.status.projection import TERMINAL, JobStatus
from services.status.tables import group_members, job_groups, jobs
from shared.contracts.jobs import DataClassification, JobSubmitted, Site

log = logging.getLogger("hybridq.status.saga")
FAILED_MEMBER = frozenset({JobStatus.DEAD_LETTERED, JobStatus.CANCELLED, JobStatus.REJECTED})
SWEEP_BATCH = 100


def compensation_job_id(group_id: UUID, member: UUID) -> UUID:
    """Deterministic, so a re-submitted compensation is a duplicate the router skips."""
    return uuid5(NAMESPACE_URL, f"hybridq:group:{group_id}:compensate:{member}")


@dataclass(frozen=True)
class Member:
    """The coordinator's record of one member."""

    job_id: UUID
    compensation: dict[str, Any] | None
    compensation_job_id: UUID | None
    outcome: str | None
    site: str | None
    data_classification: str | None
    priority: int | None


def compensations_due(group_id: UUID, members: Sequence[Member]) -> list[JobSubmitted]:
    """What the group must submit now: once any member failed, the compensation of each
    succeeded member not compensated yet (a member succeeding later is caught then)."""
    if not any(m.outcome in FAILED_MEMBER for m in members):
        return []
    due = []
    for m in members:
        if m.outcome != "succeeded" or not m.compensation or m.compensation_job_id is not None:
            continue
        confidential = m.data_classification == DataClassification.CONFIDENTIAL
        site = Site.PRIVATE if confidential else (Site(m.site) if m.site else None)
        due.append(
            JobSubmitted(
                job_id=compensation_job_id(group_id, m.job_id),
                job_type=m.compensation["job_type"],
                params=m.compensation.get("params") or {},
                data_classification=m.data_classification or DataClassification.INTERNAL,
                target_cloud=site,
                priority=m.priority if m.priority is not None else 5,
            )
        )
    return due


async def member_ended(
    conn: AsyncConnection, job_id: UUID, outcome: str, site: str | None
) -> list[JobSubmitted]:
    """Record a member's ending and queue the compensations it calls for, in the caller's
    transaction; idempotent (a second ending of the same member changes nothing)."""
    group_id = await conn.scalar(
        select(group_members.c.group_id).where(
            group_members.c.job_id == job_id, group_members.c.outcome.is_(None)
        )
    )
    if group_id is None:
        return []  # not a member, or its ending is already recorded
    # one decision per group at a time, across replicas
    await conn.execute(
        select(job_groups.c.group_id).where(job_groups.c.group_id == group_id).with_for_update()
    )
    recorded = await conn.execute(
        group_members.update()
        .where(group_members.c.job_id == job_id, group_members.c.outcome.is_(None))
        .values(outcome=outcome, site=func.coalesce(site, group_members.c.site))
        .returning(group_members.c.job_id)
    )
    if recorded.first() is None:
        return []
    rows = await conn.execute(
        select(group_members)
        .where(group_members.c.group_id == group_id)
        .order_by(group_members.c.position)
    )
    members = [
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
    due = compensations_due(group_id, members)
    await outbox.add(conn, due)
    for job in due:
        member = next(m for m in members if compensation_job_id(group_id, m.job_id) == job.job_id)
        await conn.execute(
            group_members.update()
            .where(group_members.c.job_id == member.job_id)
            .values(compensation_job_id=job.job_id)
        )
        log.info(
            "compensation queued", extra={"job_id": str(job.job_id), "group_id": str(group_id)}
        )
    if all(m.outcome is not None for m in members):
        await conn.execute(
            job_groups.update()
            .where(job_groups.c.group_id == group_id)
            .values(settled_at=func.now())
        )
    return due


async def sweep(engine: AsyncEngine) -> int:
    """Endings the coordinator's queue did not bring: members still open whose job view is
    terminal. One indexed query over open members only; finished groups are never read."""
    query = (
        select(group_members.c.job_id, jobs.c.status, jobs.c.site)
        .join(jobs, jobs.c.job_id == group_members.c.job_id)
        .where(group_members.c.outcome.is_(None), jobs.c.status.in_(sorted(TERMINAL)))
        .limit(SWEEP_BATCH)
    )
    async with engine.connect() as conn:
        ended = list(await conn.execute(query))
    for job_id, status, site in ended:
        async with engine.begin() as conn:
            await member_ended(conn, job_id, status, site)
    return len(ended)
