"""Request and response bodies of the HTTP API (they make the OpenAPI document)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from services.status.domain.views import JobView
from shared.contracts.jobs import JobSpec, Site

Text = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00]*$")]
"""A short string Postgres can store (text columns refuse NUL)."""


def _utc(value: datetime) -> datetime:
    """A naive time is taken as UTC; one that cannot be expressed in UTC (year 1 at
    +14:00) is refused, not handed to the database."""
    try:
        return value.replace(tzinfo=value.tzinfo or UTC).astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("datetime out of range") from exc


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


def no_nul(value: Any) -> Any:
    """Refuse NUL anywhere in a JSON value that is stored (Postgres text and jsonb
    cannot hold it)."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    if isinstance(value, dict):
        for key, item in value.items():
            no_nul(key)
            no_nul(item)
    elif isinstance(value, list):
        for item in value:
            no_nul(item)
    return value


def refuse_null(value: object) -> object:
    """A field validator's body for an optional field that may be left out but not null."""
    if value is None:
        raise ValueError("leave the field out rather than send null")
    return value


class SubmitJob(JobSpec):
    """A JobSubmitted without `job_id` (optional here: generated when absent)."""

    job_id: UUID | None = None


class Submitted(BaseModel):
    job_id: UUID
    status: str = "submitted"


class JobPage(BaseModel):
    items: list[JobView]
    next_cursor: str | None


class EventList(BaseModel):
    items: list[dict[str, Any]]


class DeadLetterOut(BaseModel):
    id: str
    job_id: UUID | None
    reason: str
    detail: str | None = None
    source_queue: str | None
    dead_lettered_at: datetime
    job_type: str | None = None
    site: str | None = None
    redriven_at: datetime | None = None
    body: str


class DeadLetterPage(BaseModel):
    items: list[DeadLetterOut]
    next_cursor: str | None


TEXT_SCHEMA: dict[str, JsonValue] = {"type": "string", "maxLength": 200, "pattern": r"^[^\x00]*$"}
SELECTORS = ("ids", "reason", "job_type")
_SELECTED: list[JsonValue] = [{"required": [name]} for name in SELECTORS]


class RedriveRequest(BaseModel):
    """Which dead letters: `ids`, or a filter (`reason`, `job_type`), or `all: true` for
    every one; at most `limit` of them. An empty selection (`{}`, `{"limit": 5}`) is
    refused, never taken as "everything"."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [*_SELECTED, {"required": ["all"]}],
            "not": {"required": ["all"], "anyOf": _SELECTED},
        },
    )

    # left out, never null: the document says so
    ids: Annotated[
        list[Text] | None,
        Field(max_length=1000),
        WithJsonSchema({"type": "array", "items": TEXT_SCHEMA, "maxItems": 1000}),
    ] = None
    reason: Annotated[Text | None, WithJsonSchema(TEXT_SCHEMA)] = None
    job_type: Annotated[Text | None, WithJsonSchema(TEXT_SCHEMA)] = None
    all: Annotated[Literal[True] | None, WithJsonSchema({"const": True})] = None
    limit: int = Field(default=100, ge=1, le=1000)
    site: Site | None = None

    @field_validator(*SELECTORS, "all", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        return refuse_null(value)

    @model_validator(mode="after")
    def _one_selection(self) -> RedriveRequest:
        chosen = [name for name in SELECTORS if getattr(self, name) is not None]
        if self.all and chosen:
            raise ValueError(f"give `all: true` or {', '.join(chosen)}, not both")
        if not (self.all or chosen):
            raise ValueError(
                "say which dead letters: ids, reason or job_type, or all: true for every one"
            )
        return self


class Redriven(BaseModel):
    redriven: int
    skipped: list[dict[str, str]] = Field(default_factory=list)


class CancelRequest(BaseModel):
    reason: Annotated[str, StringConstraints(max_length=1000, pattern=r"^[^\x00]*$")] = (
        "cancelled by operator"
    )


class Accepted(BaseModel):
    job_id: UUID
    status: str


class QueueDepthOut(BaseModel):
    ready: int
    unacked: int | None
    consumers: int


class Stats(BaseModel):
    by_status: dict[str, int]
    by_site: dict[str, dict[str, int]]
    queues: dict[str, QueueDepthOut]


class FieldErrorOut(BaseModel):
    field: str
    message: str


MAX_BATCH = 1000


class SubmitBatch(BaseModel):
    """`POST /jobs/batch`: 1 to 1,000 jobs, each what `POST /jobs` takes (a job that is
    not is refused on its own, the others are still submitted)."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[Any] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="each a JobSubmitted with or without `job_id` (the body `POST /jobs` "
        "takes, schema SubmitJob); anything else is refused in its item, not the request",
    )


class BatchSubmitted(BaseModel):
    index: int
    job_id: UUID
    status: Literal["submitted"] = "submitted"


class BatchRejected(BaseModel):
    index: int
    status: Literal["rejected"] = "rejected"
    errors: list[FieldErrorOut]


class BatchAnswer(BaseModel):
    """One item per job of the request, in its order."""

    items: list[BatchSubmitted | BatchRejected]


class EventPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str
