"""What workers say about themselves on `jobs.events` (routing keys `worker.*`, not `job.*`).

`WorkerHeartbeat`: every HEARTBEAT_SECONDS, who the worker is, what it runs and which
attempts it is running now (a listed leased attempt is thereby renewed).
`AttemptLeased`: an attempt longer than the broker's consumer timeout is run under a lease
instead of an unacked delivery; this message hands the status service what it needs to
retry the attempt if the lease is not renewed (see docs/design.md, "Long attempts").
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from shared.contracts.events import utcnow
from shared.contracts.jobs import PlacedJob, Site


class RunningAttempt(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    job_id: UUID
    attempt: int
    job_type: str
    started_at: datetime


class WorkerMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    routing_key: ClassVar[str]

    message_id: UUID = Field(default_factory=uuid4)
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    schema_version: Literal[1] = 1
    worker: str
    instance: UUID  # one process (a restarted worker with the same name is a new instance)
    site: Site


class WorkerHeartbeat(WorkerMessage):
    """A worker is alive: its site, job types, concurrency and running attempts (every
    HEARTBEAT_SECONDS; expires unread after a few intervals)."""

    routing_key = "worker.heartbeat"
    type: Literal["WorkerHeartbeat"] = "WorkerHeartbeat"
    job_types: list[str]
    concurrency: int
    running: list[RunningAttempt] = Field(default_factory=list)
    interval_seconds: float


class AttemptLeased(WorkerMessage):
    """A long attempt runs under a lease (renewed by heartbeats) instead of a delivery."""

    routing_key = "worker.lease"
    type: Literal["AttemptLeased"] = "AttemptLeased"
    job: PlacedJob
    lease_seconds: float  # not renewed for this long: the attempt counts as interrupted
    retry_base_seconds: float
    retry_max_seconds: float


class AttemptReleased(WorkerMessage):
    """The worker no longer holds the lease: the attempt ended, or was handed back on
    shutdown (re-dispatched first, then released)."""

    routing_key = "worker.released"
    type: Literal["AttemptReleased"] = "AttemptReleased"
    job_id: UUID
    attempt: int


AnyWorkerMessage = Annotated[
    WorkerHeartbeat | AttemptLeased | AttemptReleased, Field(discriminator="type")
]
WORKER_MESSAGE_ADAPTER: TypeAdapter[AnyWorkerMessage] = TypeAdapter(AnyWorkerMessage)
