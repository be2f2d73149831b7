"""The job view: the one type a job's state has, from the fold to the row to the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from shared.contracts.jobs import DataClassification, Site


class JobStatus(StrEnum):
    """A job view's status (contract section 5); compares equal to its string."""

    SUBMITTED = "submitted"
    REJECTED = "rejected"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    DEAD_LETTERED = "dead_lettered"
    CANCELLED = "cancelled"


TERMINAL = frozenset(
    {JobStatus.REJECTED, JobStatus.SUCCEEDED, JobStatus.DEAD_LETTERED, JobStatus.CANCELLED}
)
STATUSES = tuple(s.value for s in JobStatus)


@dataclass(frozen=True, slots=True)
class JobView:
    """Where a job is and why (contract §5, "Job view").

    The fold (`projection`) fills what events say; `updated_at`, `group_id` and
    `schedule_id` come from the store (when the row changed, the group and schedule that
    know the job)."""

    job_id: UUID
    status: JobStatus = JobStatus.SUBMITTED
    job_type: str | None = None
    site: Site | None = None
    rule: str | None = None
    reason: str | None = None
    priority: int | None = None
    data_classification: DataClassification | None = None
    attempts: int = 0
    max_attempts: int | None = None
    params: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    progress: float | None = None
    progress_message: str | None = None
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    parent_id: UUID | None = None
    updated_at: datetime | None = None
    group_id: UUID | None = None
    schedule_id: UUID | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


FOLDED_FIELDS = (
    "status",
    "job_type",
    "site",
    "rule",
    "reason",
    "priority",
    "data_classification",
    "attempts",
    "max_attempts",
    "params",
    "result",
    "error",
    "progress",
    "progress_message",
    "submitted_at",
    "started_at",
    "finished_at",
    "parent_id",
)
"""The view's fields that events decide (the rest come from the store)."""
