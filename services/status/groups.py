"""Job groups (sagas), the API's side: create a group without a dual write, and read its
status. Every member runs; if one ends dead_lettered, cancelled or rejected, the
compensation job of every member that succeeded is submitted (saga.py decides), and the
group ends `compensated` once they all succeed (`failed` if a compensation dead-letters).

Creation writes the group, its members and their submissions (outbox) in one
transaction; the relay publishes the outbox afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status import outbox, queries
from services.status.saga import FAILED_MEMBER
from services.status.tables import group_members, job_groups
from shared.bus import Bus
from shared.contracts.jobs import JobSubmitted

log = logging.getLogger("hybridq.status.groups")


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


class AlreadyGrouped(Exception):
    """Some of a new group's job ids are members of another group already: a job belongs
    to one group (nothing of the new group was recorded)."""

    def __init__(self, job_ids: list[UUID]) -> None:
        super().__init__(", ".join(str(j) for j in job_ids))
        self.job_ids = job_ids


async def create(
    engine: AsyncEngine, bus: Bus, group_id: UUID, members: list[tuple[JobSubmitted, Any]]
) -> None:
    """Record the group, its members and their submissions in one transaction; then
    publish them (the background relay does it if this publish fails). Raises
    `AlreadyGrouped` (and records nothing) when a job id is another group's member."""
    try:
        await _record(engine, group_id, members)
    except IntegrityError as exc:
        ids = [job.job_id for job, _ in members]
        taken = await queries.rows(
            engine, select(group_members.c.job_id).where(group_members.c.job_id.in_(ids))
        )
        if not taken:
            raise
        raise AlreadyGrouped([row.job_id for row in taken]) from exc
    try:
        await outbox.relay(engine, bus)
    except Exception:
        log.warning("group %s recorded; the relay will publish it", group_id, exc_info=True)


async def _record(
    engine: AsyncEngine, group_id: UUID, members: list[tuple[JobSubmitted, Any]]
) -> None:
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
    members = list(await queries.rows(engine, query))
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
