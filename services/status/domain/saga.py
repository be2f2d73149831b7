"""Job groups (sagas), as rules: what a group must submit, and what its status is.

Every member runs; once a member is `dead_lettered`, `cancelled` or `rejected`, every member
that succeeded (now or later) gets its compensation job, with a deterministic `job_id`, on
the member's site and classification (a confidential member's compensation stays private);
the group ends `compensated` once they all succeed (`failed` if one dead-letters).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

from services.status.domain.ids import compensation_job_id
from services.status.domain.views import JobStatus
from shared.contracts.jobs import DataClassification, JobSubmitted, Site

FAILED_MEMBER = frozenset({JobStatus.DEAD_LETTERED, JobStatus.CANCELLED, JobStatus.REJECTED})


class GroupStatus(StrEnum):
    """A group's status, derived on read (contract §5)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    FAILED = "failed"


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
        if m.outcome != JobStatus.SUCCEEDED or not m.compensation or m.compensation_job_id:
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


def group_status(members: Sequence[str], compensations: Sequence[str | None]) -> GroupStatus:
    """The group's status from its members' and its compensation jobs' statuses.

    `compensations` has one entry per compensation the group needs (None: not visible yet).
    """
    if any(c == JobStatus.DEAD_LETTERED for c in compensations):
        return GroupStatus.FAILED
    if any(m in FAILED_MEMBER for m in members):
        settled = all(m in (JobStatus.SUCCEEDED, *FAILED_MEMBER) for m in members)
        done = all(c == JobStatus.SUCCEEDED for c in compensations)
        return GroupStatus.COMPENSATED if settled and done else GroupStatus.COMPENSATING
    if members and all(m == JobStatus.SUCCEEDED for m in members):
        return GroupStatus.SUCCEEDED
    return GroupStatus.RUNNING
