"""Job groups (sagas): every member runs; if one ends dead_lettered, cancelled or
rejected, the compensation job of every member that succeeded is submitted, and the group
ends `compensated` once they all succeed (`failed` if a compensation dead-letters).

No dual writes: creation writes the group, its members and their submissions (outbox) in
one transaction; the coordinator records each member's ending and, in the same transaction,
the compensations it decides (outbox again). The relay publishes the outbox afterwards.
The coordinator learns endings from its own queue (`jobs.status.groups`, the job-ending
events) and, as a safety net, from a sweep over the job views (endings that never reach the
bus, such as a member dead-lettered by the broker's delivery limit, or a rejection).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.status import outbox, queries
from services.status.projection import TERMINAL, JobStatus
from services.status.tables import group_members, job_groups, jobs
from shared.bus import Bus
from shared.contracts.jobs import DataClassification, JobSubmitted, Site

log = logging.getLogger("hybridq.status.groups")
FAILED_MEMBER = frozenset({JobStatus.DEAD_LETTERED, JobStatus.CANCELLED, JobStatus.REJECTED})
SWEEP_BATCH = 100


def compensation_job_id(group_id: UUID, member: UUID) -> UUID:
    """Deterministic, so a re-submitted compensation is a duplicate the router skips."""
    return uuid5(NAMESPACE_URL, f"hybridq:group:{group_id}:compensate:{member}")


def group_status(members: Sequence[str], compensations: Sequence[str | None]) -> str:
    """The group's status from its members' and its compensation jobs' statuses.

    `compensations` has one entry per compensation the group needs (None: not visible yet).
    """
    if any(c == "dead_lettered" for c in compensations):
        return "failed"
    if any(m in FAILED_MEMBER for m in members):
        settled = all(m in ("succeeded", *FAILED_MEMBER) for m in members)
        done = all(c == "succeeded" for c in compensations)
        return "compensated" if settled and done else "compensating"
    if members and all(m == "succeeded" for m in members):
        return "succeeded"
    return "running"


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


async def create(
    engine: AsyncEngine, bus: Bus, group_id: UUID, members: list[tuple[JobSubmitted, Any]]
) -> None:
    """Record the group, its members and their submissions in one transaction; then
    publish them (the background relay does it if this publish fails)."""
    async with engine.begin() as conn:
        await conn.execute(insert(job_groups).values(group_id=group_id))
        await conn.execute(
            insert(group_members).values(
                [
                    {
                        "group_id": group_id,
                        "job_id": job.job_id,
                        "position": i,
                        "compensation": compensation,
                        "data_classification": job.data_classification.value,
                        "priority": job.priority,
                    }
                    for i, (job, compensation) in enumerate(members)
                ]
            )
        )
        await outbox.add(conn, [job for job, _ in members])
    try:
        await outbox.relay(engine, bus)
    except Exception:
        log.warning("group %s recorded; the relay will publish it", group_id, exc_info=True)


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


async def view(engine: AsyncEngine, group_id: UUID) -> dict[str, Any] | None:
    members, views = await _with_views(engine, group_id)
    if not members:
        return None
    compensations = []
    for m in members:
        if m.compensation_job_id is not None:
            job = await queries.get_job(engine, m.compensation_job_id)
            compensations.append(
                {**(job or _unseen(m.compensation_job_id, m.created_at)), "compensates": m.job_id}
            )
    needed = _needed(members, views)
    shown = {c["compensates"]: c["status"] for c in compensations}
    status = group_status([j["status"] for j in views], [shown.get(m.job_id) for m in needed])
    return {"group_id": group_id, "status": status, "jobs": views, "compensations": compensations}


async def _with_views(engine: AsyncEngine, group_id: UUID) -> tuple[list[Any], list[Any]]:
    """The group's members, and each member's job view (a placeholder if not seen yet)."""
    query = (
        select(group_members, job_groups.c.created_at)
        .join(job_groups, job_groups.c.group_id == group_members.c.group_id)
        .where(group_members.c.group_id == group_id)
        .order_by(group_members.c.position)
    )
    async with engine.connect() as conn:
        members = list(await conn.execute(query))
    views = [
        await queries.get_job(engine, m.job_id) or _unseen(m.job_id, m.created_at) for m in members
    ]
    return members, views


def _unseen(job_id: UUID, at: datetime) -> dict[str, Any]:
    """A job the status service has not heard of yet: just submitted with the group."""
    return {field: None for field in queries.VIEW_FIELDS} | {
        "job_id": job_id,
        "status": "submitted",
        "attempts": 0,
        "updated_at": at,
    }


def _needed(members: Iterable[Any], views: Sequence[dict[str, Any]]) -> list[Any]:
    """Members whose compensation must run: the group failed and they succeeded."""
    failing = any(j["status"] in FAILED_MEMBER for j in views)
    return [
        m
        for m, j in zip(members, views, strict=True)
        if failing and j["status"] == "succeeded" and m.compensation
    ]
