"""The job a client submits, and the placed job the router dispatches to a site."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, Strict, model_validator

SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 256 * 1024
MAX_DELAY_SECONDS = 604_800


class Site(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"


class DataClassification(StrEnum):
    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"


JobType = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_.-]+$")]
Priority = Annotated[int, Field(ge=0, le=9)]


class JobSpec(BaseModel):
    """Fields of a job as a client describes it (contract 3.1), without its identity.

    Numbers are strict (contract 3.1): `"3"` or `true` where a number is expected is an
    error naming the field, over AMQP and HTTP alike; an integer is a number for the
    float fields. Only the numbers: FastAPI validates the decoded JSON as Python values,
    where a UUID, a datetime or an enum still arrives as a string, which model-wide strict
    mode would refuse."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        # `_one_delay_field` in the schema: with `not_before`, `delay_seconds` is 0
        json_schema_extra={
            "allOf": [
                {
                    "if": {
                        "properties": {"not_before": {"type": "string"}},
                        "required": ["not_before"],
                    },
                    "then": {"properties": {"delay_seconds": {"const": 0}}},
                }
            ]
        },
    )

    job_type: JobType
    params: dict[str, Any] = Field(default_factory=dict)
    priority: Annotated[Priority, Strict()] = 5
    target_cloud: Site | None = None
    data_classification: DataClassification = DataClassification.INTERNAL
    delay_seconds: Annotated[float, Strict(), Field(ge=0, le=MAX_DELAY_SECONDS)] = 0
    not_before: AwareDatetime | None = None
    max_attempts: Annotated[int, Strict(), Field(ge=1, le=20)] = 3
    timeout_seconds: Annotated[float, Strict(), Field(gt=0, le=86_400)] | None = None
    parent_id: UUID | None = None  # set on a child job submitted by a handler

    @model_validator(mode="after")
    def _one_delay_field(self) -> JobSpec:
        if self.not_before is not None and self.delay_seconds:
            raise ValueError("give either delay_seconds or not_before, not both")
        return self


class JobSubmitted(JobSpec):
    """What a client publishes to `jobs.intake` with routing key `job.submitted`."""

    job_id: UUID
    schema_version: Literal[1] = 1

    def spec_fields(self) -> dict[str, Any]:
        """The submitted fields as JSON-ready values, as carried by the JobSubmitted event."""
        return self.model_dump(mode="json", exclude={"schema_version"})


class PlacedJob(JobSubmitted):
    """A job the router has placed on a site: the body of `jobs.dispatch` messages.

    `attempt` is the attempt this delivery is for; `first_attempt` is where the current
    budget of `max_attempts` started (a redrive opens a fresh budget, numbering goes on).
    `run_at` is the earliest moment the attempt may start (delays and retry backoff).
    `park_id` names one parking of the job in the delay machinery (`Bus.delay`): copies of
    that parked message are one dispatch, while the same attempt parked again on purpose
    (a worker with no free slot, a job that arrived early) is a new one.
    """

    site: Site
    rule: str = "explicit"
    reason: str = ""
    attempt: Annotated[int, Field(ge=1)] = 1
    first_attempt: Annotated[int, Field(ge=1)] = 1
    run_at: datetime | None = None
    announce: bool = False
    park_id: UUID | None = None

    @property
    def last_attempt(self) -> int:
        return self.first_attempt + self.max_attempts - 1

    @property
    def attempt_in_budget(self) -> int:
        """This attempt's place in its budget (1 for the first after a redrive): the retry
        backoff counts from it (contract §5, redrive)."""
        return self.attempt - self.first_attempt + 1
