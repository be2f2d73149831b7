"""Timings and throughput of finished jobs over a time range, computed in the database.

A job's timings come from its events, as the fold records them on the job's row:
- queue wait: from JobSubmitted (`submitted_at`) to its first JobStarted (`started_at`),
  the time no worker had it yet (a delayed job's delay included);
- run time: from its first JobStarted to the event that ended it (`finished_at`),
  retries and their backoff included.

Both reads select the jobs that finished in [since, until) through the partial index on
`finished_at` of terminal jobs (`ix_jobs_finished`): the statement repeats the index's
predicate so the planner can use it, and the cost follows the range, not the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, Select, case, cast, extract, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.adapters.queries import rows
from services.status.adapters.tables import jobs
from services.status.domain.views import TERMINAL

QUANTILES = (0.5, 0.95, 0.99)
ENDINGS = ("succeeded", "dead_lettered", "rejected", "cancelled")
ALL_TYPES = "(all)"
"""The `job_type` of the row that sums every job type."""


@dataclass(frozen=True)
class Percentiles:
    p50: float | None
    p95: float | None
    p99: float | None


@dataclass(frozen=True)
class TypeTimings:
    job_type: str | None
    finished: int
    outcomes: dict[str, int]
    queue_wait: Percentiles
    run_time: Percentiles


def _terminal() -> Any:
    # the same predicate as ix_jobs_finished, so the planner may use that index
    return jobs.c.status.in_(sorted(s.value for s in TERMINAL))


def _finished_in(since: datetime, until: datetime) -> list[Any]:
    return [_terminal(), jobs.c.finished_at >= since, jobs.c.finished_at < until]


def _seconds(later: Any, earlier: Any) -> Any:
    """Seconds from `earlier` to `later`, never negative (the clocks of the router and of
    the workers may disagree by a little); NULL when either is unknown."""
    # GREATEST skips NULLs: without the CASE a job never started would count as 0 s
    seconds = func.greatest(cast(extract("epoch", later - earlier), Float), 0.0)
    return case((later.is_(None) | earlier.is_(None), None), else_=seconds)


def _quantiles(value: Any) -> Any:
    wanted = cast(literal(list(QUANTILES), ARRAY(Float)), ARRAY(Float))
    return func.percentile_cont(wanted).within_group(value)


def _percentiles(values: list[float] | None) -> Percentiles:
    if not values:
        return Percentiles(None, None, None)
    p50, p95, p99 = values
    return Percentiles(p50, p95, p99)


def timings_query(since: datetime, until: datetime) -> Select[Any]:
    """The statement behind `timings`: one pass over the range, grouped by job type with
    a sum row (ROLLUP)."""
    wait = _seconds(jobs.c.started_at, jobs.c.submitted_at)
    run = _seconds(jobs.c.finished_at, jobs.c.started_at)
    grouping = func.grouping(jobs.c.job_type).label("everything")
    return (
        select(
            grouping,
            jobs.c.job_type,
            func.count().label("finished"),
            *(func.count().filter(jobs.c.status == s).label(s) for s in ENDINGS),
            _quantiles(wait).label("wait"),
            _quantiles(run).label("run"),
        )
        .where(*_finished_in(since, until))
        .group_by(func.rollup(jobs.c.job_type))
        .order_by(grouping.desc(), func.count().desc(), jobs.c.job_type)
    )


async def timings(engine: AsyncEngine, since: datetime, until: datetime) -> list[TypeTimings]:
    """Per job type (and one row for all of them, first, `job_type` "(all)"): how many
    jobs finished in [since, until), how each ended, and the p50/p95/p99 of their queue
    wait and run time (linear interpolation between the nearest ranks; a job that never
    started, such as a rejected one, has neither and counts only in `outcomes`)."""
    query = timings_query(since, until)
    found = await rows(engine, query)
    result = [
        TypeTimings(
            job_type=ALL_TYPES if r.everything else r.job_type,
            finished=r.finished,
            outcomes={s: getattr(r, s) for s in ENDINGS},
            queue_wait=_percentiles(r.wait),
            run_time=_percentiles(r.run),
        )
        for r in found
    ]
    if not result:  # no job finished: the sum row says so with zeros
        empty = Percentiles(None, None, None)
        result = [TypeTimings(ALL_TYPES, 0, dict.fromkeys(ENDINGS, 0), empty, empty)]
    return result


@dataclass(frozen=True)
class Bucket:
    start: datetime
    succeeded: int
    dead_lettered: int
    rejected: int
    cancelled: int


async def throughput(
    engine: AsyncEngine, since: datetime, until: datetime, bucket_seconds: int
) -> list[Bucket]:
    """Jobs that finished in [since, until), by how they ended, in buckets of
    `bucket_seconds` starting at `since` (every bucket listed, empty ones as zeros)."""
    width = timedelta(seconds=bucket_seconds)
    start = func.date_bin(width, jobs.c.finished_at, since).label("start")
    query = (
        select(start, jobs.c.status, func.count().label("n"))
        .where(*_finished_in(since, until))
        .group_by(start, jobs.c.status)
    )
    counts: dict[datetime, dict[str, int]] = {}
    for r in await rows(engine, query):
        counts.setdefault(r.start, {})[r.status] = r.n
    buckets = []
    at = since
    while at < until:
        seen = counts.get(at, {})
        buckets.append(Bucket(at, *(seen.get(s, 0) for s in ENDINGS)))
        at += width
    return buckets
