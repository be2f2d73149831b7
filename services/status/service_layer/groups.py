"""Job groups (sagas): create one without a dual write, record how members end and submit
the compensations that calls for, in the transaction that shows the ending."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from services.status.domain.ids import compensation_job_id
from services.status.domain.saga import compensations_due
from services.status.service_layer.unit_of_work import NewMember, UnitOfWork, UnitOfWorkFactory
from shared import messages
from shared.contracts.jobs import JobSubmitted, Site

log = logging.getLogger("hybridq.status.groups")
SWEEP_BATCH = 100


def origin(group_id: UUID) -> str:
    return f"group:{group_id}"


async def create(
    uow: UnitOfWork, group_id: UUID, members: Sequence[tuple[JobSubmitted, dict[str, Any] | None]]
) -> None:
    """Record the group, its members and their submissions (outbox) in one transaction.
    Raises `AlreadyGrouped` (the caller's transaction then records nothing) when a job id
    is another group's member."""
    await uow.groups.add(
        group_id,
        [
            NewMember(job.job_id, compensation, job.data_classification.value, job.priority)
            for job, compensation in members
        ],
    )
    for job, _ in members:
        await uow.outbox.add(messages.submission(job), origin(group_id))


async def members_ended(
    uow: UnitOfWork, endings: Sequence[tuple[UUID, str, Site | str | None]]
) -> int:
    """Jobs whose view just became terminal (job, status, site): record the ending of those
    that are open members of a group and queue the compensations it calls for. One indexed
    query for the whole batch: most jobs belong to no group. Returns compensations queued."""
    members = await uow.groups.open_members([job_id for job_id, _, _ in endings])
    queued = 0
    for job_id, status, site in sorted(endings, key=lambda e: e[0]):
        if job_id in members:
            queued += await member_ended(uow, job_id, status, _site(site))
    return queued


def _site(site: Site | str | None) -> str | None:
    return site.value if isinstance(site, Site) else site


async def member_ended(uow: UnitOfWork, job_id: UUID, outcome: str, site: str | None) -> int:
    """Record a member's ending and queue the compensations it calls for, in the caller's
    transaction; idempotent (a second ending of the same member changes nothing)."""
    group_id = await uow.groups.lock_group_of(job_id)
    if group_id is None or not await uow.groups.record_outcome(job_id, outcome, site):
        return 0  # not a member, or its ending is already recorded
    members = await uow.groups.members(group_id)
    due = compensations_due(group_id, members)
    for job in due:
        await uow.outbox.add(messages.submission(job), origin(group_id))
        member = next(m for m in members if compensation_job_id(group_id, m.job_id) == job.job_id)
        await uow.groups.set_compensation(member.job_id, job.job_id)
        log.info(
            "compensation queued", extra={"job_id": str(job.job_id), "group_id": str(group_id)}
        )
    if all(m.outcome is not None for m in await uow.groups.members(group_id)):
        await uow.groups.settle(group_id)
    return len(due)


async def sweep(units: UnitOfWorkFactory) -> int:
    """Endings the projection did not bring (a view made terminal by another writer):
    members still open whose job view is terminal, each recorded in its own transaction."""
    async with units() as uow:
        ended = await uow.groups.ended_unrecorded(SWEEP_BATCH)
    for job_id, status, site in ended:
        async with units() as uow:
            await member_ended(uow, job_id, status, site)
    return len(ended)
