"""Job groups (sagas): every member runs; if one ends dead_lettered, cancelled or
rejected, the compensation job of every member that succeeded is submitted, and the group
ends `compensated` once they all succeed (`failed` if a compensation dead-letters)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status import queries
from services.status.tables import group_members, job_groups, jobs
from shared.bus import Bus
from shared.contracts.events import (
    AnyEvent,
    JobCancelled,
    JobDeadLettered,
    JobRejected,
    JobSucceeded,
)
from shared.contracts.jobs import JobSubmitted

log = logging.getLogger("hybridq.status.groups")
FAILED_MEMBER = frozenset({"dead_lettered", "cancelled", "rejected"})
SWEEP_SECONDS = 5.0
ENDINGS = (JobSucceeded, JobDeadLettered, JobCancelled, JobRejected)


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


async def create(
    engine: AsyncEngine, bus: Bus, group_id: UUID, jobs: list[tuple[JobSubmitted, Any]]
) -> None:
    """Record the group, then submit its members."""
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
                    }
                    for i, (job, compensation) in enumerate(jobs)
                ]
            )
        )
    for job, _ in jobs:
        await bus.submit(job.model_dump_json().encode())


async def _members(engine: AsyncEngine, group_id: UUID) -> list[Any]:
    query = (
        select(group_members, job_groups.c.created_at)
        .join(job_groups, job_groups.c.group_id == group_members.c.group_id)
        .where(group_members.c.group_id == group_id)
        .order_by(group_members.c.position)
    )
    async with engine.connect() as conn:
        return list(await conn.execute(query))


async def _with_views(engine: AsyncEngine, group_id: UUID) -> tuple[list[Any], list[Any]]:
    """The group's members, and each member's job view (a placeholder if not seen yet)."""
    members = await _members(engine, group_id)
    jobs = [
        await queries.get_job(engine, m.job_id) or _unseen(m.job_id, m.created_at) for m in members
    ]
    return members, jobs


async def view(engine: AsyncEngine, group_id: UUID) -> dict[str, Any] | None:
    members, jobs = await _with_views(engine, group_id)
    if not members:
        return None
    compensations = []
    for m in members:
        if m.compensation_job_id is not None:
            job = await queries.get_job(engine, m.compensation_job_id)
            compensations.append(
                {**(job or _unseen(m.compensation_job_id, m.created_at)), "compensates": m.job_id}
            )
    needed = _needed(members, jobs)
    shown = {c["compensates"]: c["status"] for c in compensations}
    status = group_status([j["status"] for j in jobs], [shown.get(m.job_id) for m in needed])
    return {"group_id": group_id, "status": status, "jobs": jobs, "compensations": compensations}


def _unseen(job_id: UUID, at: datetime) -> dict[str, Any]:
    """A job the status service has not heard of yet: just submitted with the group."""
    return {field: None for field in queries.VIEW_FIELDS} | {
        "job_id": job_id,
        "status": "submitted",
        "attempts": 0,
        "updated_at": at,
    }


def _needed(members: Iterable[Any], jobs: Sequence[dict[str, Any]]) -> list[Any]:
    """Members whose compensation must run: the group failed and they succeeded."""
    failing = any(j["status"] in FAILED_MEMBER for j in jobs)
    return [
        m
        for m, j in zip(members, jobs, strict=True)
        if failing and j["status"] == "succeeded" and m.compensation
    ]


async def compensate(engine: AsyncEngine, bus: Bus, group_id: UUID) -> int:
    """Submit the compensations a failing group needs and has not submitted yet."""
    members, jobs = await _with_views(engine, group_id)
    needed = _needed(members, jobs)
    submitted = 0
    for member, job in zip(members, jobs, strict=True):
        if member not in needed or member.compensation_job_id is not None:
            continue
        comp_id = compensation_job_id(group_id, member.job_id)
        target = job["site"] if job["data_classification"] != "confidential" else "private"
        await bus.submit(
            JobSubmitted(
                job_id=comp_id,
                job_type=member.compensation["job_type"],
                params=member.compensation.get("params") or {},
                data_classification=job["data_classification"] or "internal",
                target_cloud=target,
                priority=job["priority"] if job["priority"] is not None else 5,
            )
            .model_dump_json()
            .encode()
        )
        async with engine.begin() as conn:
            await conn.execute(
                group_members.update()
                .where(group_members.c.job_id == member.job_id)
                .values(compensation_job_id=comp_id)
            )
        log.info(
            "compensation submitted", extra={"job_id": str(comp_id), "group_id": str(group_id)}
        )
        submitted += 1
    return submitted


async def on_projected(engine: AsyncEngine, bus: Bus, events: Sequence[AnyEvent]) -> None:
    """After events are committed: a member that ended may call for compensations."""
    ended = [e.job_id for e in events if isinstance(e, ENDINGS)]
    for group_id in await groups_of(engine, ended):
        await compensate(engine, bus, group_id)


async def groups_of(engine: AsyncEngine, job_ids: Iterable[UUID]) -> set[UUID]:
    ids = list(set(job_ids))
    if not ids:
        return set()
    query = select(group_members.c.group_id).where(group_members.c.job_id.in_(ids))
    async with engine.connect() as conn:
        return {g for (g,) in await conn.execute(query)}


async def sweep(engine: AsyncEngine, bus: Bus) -> None:
    """Catch compensations a hook missed (e.g. the broker was away): every few seconds."""
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        try:
            pending, failing = group_members.alias("pending"), group_members.alias("failing")
            query = (
                select(pending.c.group_id)
                .distinct()
                .join(failing, failing.c.group_id == pending.c.group_id)
                .join(jobs, jobs.c.job_id == failing.c.job_id)
                .where(
                    pending.c.compensation.is_not(None),
                    pending.c.compensation_job_id.is_(None),
                    jobs.c.status.in_(FAILED_MEMBER),
                )
            )
            async with engine.connect() as conn:
                candidates = [g for (g,) in await conn.execute(query)]
            for group_id in candidates:
                await compensate(engine, bus, group_id)
        except Exception:  # broker or database away: try again on the next round
            log.warning("group sweep failed", exc_info=True)
