"""Timings and throughput of finished jobs over a time range (the dashboard's overview)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from services.status.adapters import insights
from services.status.entrypoints.http.auth import Reader
from services.status.entrypoints.http.deps import Res
from services.status.entrypoints.http.errors import problems
from services.status.entrypoints.http.schemas import UtcDatetime

router = APIRouter(tags=["operations"])

DEFAULT_RANGE = timedelta(minutes=15)
MAX_RANGE = timedelta(days=31)
MAX_BUCKETS = 1000
NICE_BUCKETS = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
"""Bucket widths (seconds) chosen when the caller does not say: ~60 bars per range."""


class Percentiles(BaseModel):
    """Seconds; null when no job in the range has this timing."""

    p50: float | None
    p95: float | None
    p99: float | None


class TypeTimings(BaseModel):
    job_type: str | None = Field(
        description='the job type; "(all)" for the row over every type; null for jobs '
        "whose JobSubmitted was never seen"
    )
    finished: int = Field(description="jobs of this type that finished in the range")
    outcomes: dict[str, int] = Field(
        description="of those, how many succeeded, dead_lettered, rejected, cancelled"
    )
    queue_wait: Percentiles = Field(description="JobSubmitted to the first JobStarted")
    run_time: Percentiles = Field(description="the first JobStarted to the job's end")


class Timings(BaseModel):
    since: datetime
    until: datetime
    items: list[TypeTimings] = Field(description='"(all)" first, then each job type, busiest first')


class Bucket(BaseModel):
    start: datetime
    succeeded: int
    dead_lettered: int
    rejected: int
    cancelled: int


class Throughput(BaseModel):
    since: datetime
    until: datetime
    bucket_seconds: int
    buckets: list[Bucket] = Field(description="every bucket from `since`, oldest first")


class RangeError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _range(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    """[since, until): `until` defaults to now, `since` to 15 minutes before `until`."""
    until = until or datetime.now(UTC)
    since = since or until - DEFAULT_RANGE
    if since >= until:
        raise RangeError("since", "since must be before until")
    if until - since > MAX_RANGE:
        raise RangeError("since", f"the range may be at most {MAX_RANGE.days} days")
    return since, until


def _invalid(exc: RangeError) -> HTTPException:
    return HTTPException(
        422, {"detail": str(exc), "errors": [{"field": exc.field, "message": str(exc)}]}
    )


Since = Annotated[
    UtcDatetime | None, Query(description="start of the range (default: until - 15 min)")
]
Until = Annotated[UtcDatetime | None, Query(description="end of the range (default: now)")]
RANGE_ERRORS = problems(422, _422="since not before until, or a range over 31 days")


@router.get("/stats/timings", response_model=Timings, dependencies=[Reader], responses=RANGE_ERRORS)
async def timings(res: Res, since: Since = None, until: Until = None) -> Timings:
    """p50/p95/p99 of queue wait and run time of the jobs that finished in [since, until),
    over all job types and per job type, with how each ended."""
    try:
        start, end = _range(since, until)
    except RangeError as exc:
        raise _invalid(exc) from exc
    found = await insights.timings(res.reads, start, end)
    return Timings(
        since=start, until=end, items=[TypeTimings.model_validate(asdict(t)) for t in found]
    )


def _bucket_width(start: datetime, end: datetime, chosen: int | None) -> int:
    span = (end - start).total_seconds()
    if chosen is None:
        return next((b for b in NICE_BUCKETS if span / b <= 60), NICE_BUCKETS[-1])
    if span / chosen > MAX_BUCKETS:
        raise RangeError(
            "bucket_seconds", f"at most {MAX_BUCKETS} buckets: choose a wider bucket_seconds"
        )
    return chosen


@router.get(
    "/stats/throughput", response_model=Throughput, dependencies=[Reader], responses=RANGE_ERRORS
)
async def throughput(
    res: Res,
    since: Since = None,
    until: Until = None,
    bucket_seconds: Annotated[
        int | None,
        Query(ge=1, le=86400, description="bucket width (default: about 60 buckets)"),
    ] = None,
) -> Throughput:
    """Jobs that finished in [since, until), by how they ended, per time bucket."""
    try:
        start, end = _range(since, until)
        width = _bucket_width(start, end, bucket_seconds)
    except RangeError as exc:
        raise _invalid(exc) from exc
    found = await insights.throughput(res.reads, start, end, width)
    return Throughput(
        since=start,
        until=end,
        bucket_seconds=width,
        buckets=[Bucket.model_validate(asdict(b)) for b in found],
    )
