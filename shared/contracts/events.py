"""Lifecycle events published on `jobs.events` with routing key `job.<event>` (contract 3.2)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from shared.contracts.jobs import (
    DataClassification,
    JobType,
    Priority,
    Site,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


class FieldError(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str
    message: str


class Event(BaseModel):
    """Envelope every lifecycle event carries."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    routing_key: ClassVar[str]
    rank: ClassVar[int]  # lifecycle order, for ties and for the status state machine

    event_id: UUID = Field(default_factory=uuid4)
    job_id: UUID
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    schema_version: Literal[1] = 1


class JobSubmittedEvent(Event):
    """The router accepted a job (emitted on intake, so every job is seen)."""

    routing_key = "job.submitted"
    rank = 0
    type: Literal["JobSubmitted"] = "JobSubmitted"
    job_type: JobType
    params: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = 5
    target_cloud: Site | None = None
    data_classification: DataClassification = DataClassification.INTERNAL
    delay_seconds: float = 0
    not_before: AwareDatetime | None = None
    max_attempts: int = 3
    timeout_seconds: float | None = None
    parent_id: UUID | None = None


class JobRejected(Event):
    """A job will not run: invalid, or refused by policy (residency, no handler)."""

    routing_key = "job.rejected"
    rank = 1
    type: Literal["JobRejected"] = "JobRejected"
    reason: str
    errors: list[FieldError] = Field(default_factory=list)


class JobScheduled(Event):
    """A delayed job waits until `not_before` on its site."""

    routing_key = "job.scheduled"
    rank = 2
    type: Literal["JobScheduled"] = "JobScheduled"
    site: Site
    not_before: AwareDatetime


class JobRouted(Event):
    """The router placed the job: `rule` decided, `reason` says why."""

    routing_key = "job.routed"
    rank = 3
    type: Literal["JobRouted"] = "JobRouted"
    site: Site
    rule: str
    reason: str
    priority: Priority
    private_backlog: int | None = None


class JobStarted(Event):
    """A worker started an attempt."""

    routing_key = "job.started"
    rank = 4
    type: Literal["JobStarted"] = "JobStarted"
    site: Site
    attempt: int
    worker: str


class JobProgress(Event):
    """A running attempt reports progress."""

    routing_key = "job.progress"
    rank = 5
    type: Literal["JobProgress"] = "JobProgress"
    attempt: int
    percent: Annotated[float, Field(ge=0, le=100)]
    message: str = ""


class JobFailed(Event):
    """An attempt failed; `retry_at` is when the next starts (null: no retry)."""

    routing_key = "job.failed"
    rank = 6
    type: Literal["JobFailed"] = "JobFailed"
    site: Site
    attempt: int
    error: str
    retry_at: AwareDatetime | None = None


class JobSucceeded(Event):
    """An attempt succeeded with `result`."""

    routing_key = "job.succeeded"
    rank = 7
    type: Literal["JobSucceeded"] = "JobSucceeded"
    site: Site
    attempt: int
    result: dict[str, Any] = Field(default_factory=dict)
    duration_seconds: float


class JobDeadLettered(Event):
    """The job went to the dead-letter queue after `attempts` attempts."""

    routing_key = "job.dead_lettered"
    rank = 8
    type: Literal["JobDeadLettered"] = "JobDeadLettered"
    reason: str
    attempts: int


class JobCancelled(Event):
    """An operator cancelled the job."""

    routing_key = "job.cancelled"
    rank = 9
    type: Literal["JobCancelled"] = "JobCancelled"
    reason: str


class JobRedriven(Event):
    """An operator re-opened a dead-lettered job on `site`."""

    routing_key = "job.redriven"
    rank = 10
    type: Literal["JobRedriven"] = "JobRedriven"
    site: Site
    dead_letter_id: str
    next_attempt: int | None = None
    max_attempts: int | None = None
    """The job's own max_attempts: the fresh budget this redrive opens (contract §5)."""


AnyEvent = Annotated[
    JobSubmittedEvent
    | JobRejected
    | JobScheduled
    | JobRouted
    | JobStarted
    | JobProgress
    | JobFailed
    | JobSucceeded
    | JobDeadLettered
    | JobCancelled
    | JobRedriven,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)
EVENT_TYPES: tuple[type[Event], ...] = (
    JobSubmittedEvent,
    JobRejected,
    JobScheduled,
    JobRouted,
    JobStarted,
    JobProgress,
    JobFailed,
    JobSucceeded,
    JobDeadLettered,
    JobCancelled,
    JobRedriven,
)


def parse_event(data: bytes | str | dict[str, Any]) -> AnyEvent:
    """Parse one lifecycle event from JSON bytes/text or a decoded dict."""
    if isinstance(data, dict):
        return EVENT_ADAPTER.validate_python(data)
    return EVENT_ADAPTER.validate_json(data)
