"""Reads of the status store for the HTTP API: job views, history, listings, counts."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Executable,
    Select,
    Text,
    any_,
    bindparam,
    cast,
    literal_column,
    select,
    true,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.adapters.postgres import view_of
from services.status.adapters.tables import (
    Xid8,
    dead_letters,
    group_members,
    job_counts,
    job_events,
    jobs,
    schedule_firings,
)
from services.status.domain.views import JobView


class DatabaseTime:
    """The time one HTTP request spends in `rows` (for its Server-Timing header)."""

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds = 0.0

    @classmethod
    def start(cls) -> DatabaseTime:
        """A new account for the current request (a task's context, which the tasks it
        starts copy, so their reads are counted too)."""
        account = cls()
        _database_time.set(account)
        return account


_database_time: ContextVar[DatabaseTime | None] = ContextVar("database_time", default=None)


async def rows(engine: AsyncEngine, query: Executable) -> Sequence[Any]:
    """The rows of one read statement (see `_rows`), its time counted in the request's
    `DatabaseTime` when there is one."""
    account = _database_time.get()
    if account is None:
        return await _rows(engine, query)
    started = time.perf_counter()
    try:
        return await _rows(engine, query)
    finally:
        account.seconds += time.perf_counter() - started


async def _rows(engine: AsyncEngine, query: Executable) -> Sequence[Any]:
    """The rows of one read statement.

    The API's read pool does not ping each connection before use (a round trip per
    request). A pooled connection the database has dropped since (a restart) fails at
    once; SQLAlchemy then marks it and the rest of the pool invalid, and the read is
    run once more on a new connection. A read changes nothing, so running it again is
    safe; a database that is still away fails the second try too (the caller's 503).
    """
    try:
        async with engine.connect() as conn:
            return (await conn.execute(query)).all()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    async with engine.connect() as conn:
        return (await conn.execute(query)).all()


class BadCursor(ValueError):
    """The cursor was not one this API handed out."""


def encode_cursor(*parts: Any) -> str:
    raw = json.dumps([str(p) for p in parts]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[str]:
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError as exc:
        raise BadCursor("invalid cursor") from exc
    if not isinstance(parts, list) or len(parts) != 2:
        raise BadCursor("invalid cursor")
    return [str(p) for p in parts]


class BadPrefix(ValueError):
    """A job id prefix that no job id can start with."""


UUID_DASHES = frozenset({8, 13, 18, 23})


def id_range(prefix: str) -> tuple[UUID, UUID]:
    """The lowest and highest job ids that start with `prefix`: hex digits of the id, with
    or without its dashes (where the id has them), in either case. A range of the primary
    key, so the search is an index range scan whatever the number of jobs."""
    lowered = prefix.lower()
    dashed = "-" in lowered
    if len(lowered) > 36 or (not dashed and len(lowered) > 32):
        raise BadPrefix("job_id_prefix is longer than a job id")
    for i, char in enumerate(lowered):
        dash = i in UUID_DASHES
        if dashed and dash != (char == "-"):
            raise BadPrefix(
                f"job_id_prefix: character {i + 1} must be {'a dash' if dash else 'a hex digit'}"
                " (a job id reads 8-4-4-4-12 hex digits)"
            )
        if char != "-" and char not in "0123456789abcdef":
            raise BadPrefix("job_id_prefix must be hex digits (0-9, a-f) and dashes")
    digits = lowered.replace("-", "")
    if not digits:
        raise BadPrefix("job_id_prefix needs at least one hex digit")
    return UUID(digits.ljust(32, "0")), UUID(digits.ljust(32, "f"))


def prefix_filter(prefix: str) -> ColumnElement[bool]:
    """Jobs whose id starts with `prefix` (BadPrefix for one no id can start with)."""
    low, high = id_range(prefix)
    return jobs.c.job_id.between(low, high)


def _jobs_with_group() -> Select[Any]:
    """Job rows with the group and the schedule each belongs to (if any)."""
    return (
        select(jobs, group_members.c.group_id, schedule_firings.c.schedule_id)
        .outerjoin(group_members, group_members.c.job_id == jobs.c.job_id)
        .outerjoin(schedule_firings, schedule_firings.c.job_id == jobs.c.job_id)
    )


def _view(row: Any) -> JobView:
    return view_of(row._mapping)


async def get_job(engine: AsyncEngine, job_id: UUID) -> JobView | None:
    found = await rows(engine, _jobs_with_group().where(jobs.c.job_id == job_id))
    return _view(found[0]) if found else None


async def list_jobs(
    engine: AsyncEngine,
    *,
    limit: int,
    cursor: str | None = None,
    status: str | None = None,
    site: str | None = None,
    job_type: str | None = None,
    parent_id: UUID | None = None,
    submitted_after: datetime | None = None,
    submitted_before: datetime | None = None,
    schedule_id: UUID | None = None,
    job_id_prefix: str | None = None,
) -> tuple[list[JobView], str | None]:
    """Newest first. `job_id_prefix`: only jobs whose id starts with it (`id_range`;
    BadPrefix for one no id can start with)."""
    query = _jobs_with_group()
    if job_id_prefix is not None:
        query = query.where(prefix_filter(job_id_prefix))
    if schedule_id is not None:
        query = query.where(schedule_firings.c.schedule_id == schedule_id)
    filters = (("status", status), ("site", site), ("job_type", job_type), ("parent_id", parent_id))
    for column, value in filters:
        if value is not None:
            query = query.where(jobs.c[column] == value)
    if submitted_after is not None:
        query = query.where(jobs.c.listed_at >= submitted_after)
    if submitted_before is not None:
        query = query.where(jobs.c.listed_at < submitted_before)
    if cursor:
        at, job_id = decode_cursor(cursor)
        try:
            at_time = datetime.fromisoformat(at)
            key = (at_time.replace(tzinfo=at_time.tzinfo or UTC).astimezone(UTC), UUID(job_id))
        except (ValueError, OverflowError) as exc:
            raise BadCursor("invalid cursor") from exc
        query = query.where(tuple_(jobs.c.listed_at, jobs.c.job_id) < key)
    query = query.order_by(jobs.c.listed_at.desc(), jobs.c.job_id.desc()).limit(limit + 1)
    found = await rows(engine, query)
    more = len(found) > limit
    page = found[:limit]
    next_cursor = encode_cursor(page[-1].listed_at.isoformat(), page[-1].job_id) if more else None
    return [_view(r) for r in page], next_cursor


async def job_history(engine: AsyncEngine, job_id: UUID) -> list[dict[str, Any]]:
    query = (
        select(job_events.c.payload)
        .where(job_events.c.job_id == job_id)
        .order_by(job_events.c.occurred_at, job_events.c.rank, job_events.c.event_id)
    )
    return [p for (p,) in await rows(engine, query)]


# -- the global event feed (GET /events, /events/stream) ---------------------------------
FEED_START = (0, 0)
_MAX_XID8 = 2**64 - 1
_MAX_BIGINT = 2**63 - 1


def feed_cursor(xid: int, seq: int) -> str:
    """The opaque cursor of a feed position: after it come the events sorted after
    (xid, seq)."""
    return encode_cursor(xid, seq)


def feed_position(cursor: str) -> tuple[int, int]:
    """The (transaction, sequence) of a feed cursor; BadCursor for anything else."""
    parts = decode_cursor(cursor)
    if not all(p.isascii() and p.isdigit() and len(p) <= 20 for p in parts):
        raise BadCursor("invalid cursor")
    xid, seq = int(parts[0]), int(parts[1])
    if xid > _MAX_XID8 or seq > _MAX_BIGINT:
        raise BadCursor("invalid cursor")
    return xid, seq


_HORIZON = """
SELECT COALESCE(
    (SELECT min(x) FROM pg_snapshot_xip(s) AS x
     WHERE (x::text::numeric % 4294967296)::bigint NOT IN (
        SELECT a.backend_xid::text::bigint FROM pg_stat_activity AS a
        WHERE a.backend_xid IS NOT NULL AND a.datname IS DISTINCT FROM current_database())),
    pg_snapshot_xmax(s))
FROM pg_current_snapshot() AS s
"""
"""The feed's horizon: the oldest transaction in progress in the statement's snapshot
(`pg_snapshot_xip`), or the next transaction id when there is none -- leaving out those
that `pg_stat_activity` shows running in another database of the server (they write
nothing here; a long one elsewhere would hold the feed back). A transaction that has
ended since the snapshot, or whose session this role may not see, is not left out:
when in doubt the horizon stays low, and a low horizon only delays."""


async def event_feed(
    engine: AsyncEngine,
    *,
    after: tuple[int, int] = FEED_START,
    limit: int,
    types: Sequence[str] = (),
    job_type: str | None = None,
) -> tuple[list[tuple[tuple[int, int], dict[str, Any]]], tuple[int, int]]:
    """Events recorded after `after`, in recorded order, each with its position, and the
    position to read on from.

    The order is (writing transaction, sequence), read only below the horizon (_HORIZON):
    the oldest transaction of this database still running when the statement's snapshot
    was taken. Every transaction below it has ended, so the rows there are final; every
    event written from now on has a transaction id at or above it, so it sorts after
    every row returned. A plain sequence is not enough: its numbers are taken
    at insert and become visible at commit, in another order, and a reader passing a
    number that an open transaction holds would skip that event for good.

    A page shorter than `limit` has read everything below the horizon: the next position
    is then the horizon itself, so a filtered reader does not scan the same rows again.
    `job_type` matches through the job's view: an event is listed under the job type its
    job had when the page was read."""
    horizon = select(literal_column(f"({_HORIZON})", Xid8()).label("x")).cte("horizon")
    xid, seq = after
    page = (
        select(
            job_events.c.feed_xid.label("position"),
            cast(job_events.c.feed_xid, Text).label("xid"),
            job_events.c.feed_seq.label("seq"),
            job_events.c.payload,
        )
        .where(
            job_events.c.feed_xid < horizon.c.x,
            tuple_(job_events.c.feed_xid, job_events.c.feed_seq)
            > tuple_(cast(bindparam(None, str(xid), type_=Text), Xid8()), bindparam(None, seq)),
        )
        .order_by(job_events.c.feed_xid, job_events.c.feed_seq)
        .limit(limit + 1)
    )
    if types:
        page = page.where(
            job_events.c.type == any_(bindparam(None, list(types), type_=ARRAY(Text)))
        )
    if job_type is not None:
        page = page.join(jobs, jobs.c.job_id == job_events.c.job_id).where(
            jobs.c.job_type == job_type
        )
    lateral = page.lateral("page")
    query = select(
        cast(horizon.c.x, Text).label("horizon"), lateral.c.xid, lateral.c.seq, lateral.c.payload
    ).select_from(horizon.outerjoin(lateral, true()))
    query = query.order_by(lateral.c.position, lateral.c.seq)
    found = await rows(engine, query)
    items = [((int(r.xid), r.seq), r.payload) for r in found if r.xid is not None]
    if len(items) > limit:
        items = items[:limit]
        return items, items[-1][0]
    return items, max(after, (int(found[0].horizon), 0))


async def counts(engine: AsyncEngine) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Jobs by status and by site, from the counters the database keeps exact (job_counts,
    migration 0009): a few rows, whatever the number of jobs stored."""
    query = select(job_counts.c.site, job_counts.c.status, job_counts.c.n).where(
        job_counts.c.n != 0
    )
    by_status: dict[str, int] = {}
    by_site: dict[str, dict[str, int]] = {"public": {}, "private": {}}
    for site, status, n in await rows(engine, query):
        by_status[status] = by_status.get(status, 0) + n
        if site in by_site:
            by_site[site][status] = n
    return by_status, by_site


def _dead_letter(row: Any) -> dict[str, Any]:
    m = row._mapping
    return {
        "id": m["id"],
        "job_id": m["job_id"],
        "reason": m["reason"],
        "detail": m["detail"],
        "source_queue": m["source_queue"],
        "dead_lettered_at": m["dead_lettered_at"],
        "job_type": m["job_type"],
        "site": m["site"],
        "redriven_at": m["redriven_at"],
        "body": m["body"],
    }


async def list_dead_letters(
    engine: AsyncEngine,
    *,
    limit: int,
    cursor: str | None = None,
    include_redriven: bool = False,
) -> tuple[list[dict[str, Any]], str | None]:
    query = select(dead_letters)
    if not include_redriven:
        query = query.where(dead_letters.c.redriven_at.is_(None))
    if cursor:
        _, seq = decode_cursor(cursor)
        if not (seq.isascii() and seq.isdigit() and len(seq) <= 18):  # fits a bigint
            raise BadCursor("invalid cursor")
        query = query.where(dead_letters.c.seq < int(seq))
    query = query.order_by(dead_letters.c.seq.desc()).limit(limit + 1)
    found = await rows(engine, query)
    more = len(found) > limit
    page = found[:limit]
    return [_dead_letter(r) for r in page], encode_cursor("dl", page[-1].seq) if more else None
