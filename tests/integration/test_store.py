"""The status store on the real Postgres: idempotent, order-proof, paginated."""

from __future__ import annotations

import random
import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.adapters import queries
from shared.contracts import events as ev
from tests.integration.store_helpers import apply_events

pytestmark = pytest.mark.connected
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def lifecycle(job_id: uuid.UUID) -> list[ev.Event]:
    at = iter(T0 + timedelta(milliseconds=i) for i in range(100))
    return [
        ev.JobSubmittedEvent(job_id=job_id, job_type="noop", occurred_at=next(at)),
        ev.JobRouted(
            job_id=job_id,
            site="public",
            rule="explicit",
            reason="asked",  # type: ignore[arg-type]
            priority=5,
            occurred_at=next(at),
        ),
        ev.JobStarted(job_id=job_id, site="public", attempt=1, worker="w", occurred_at=next(at)),  # type: ignore[arg-type]
        ev.JobFailed(
            job_id=job_id,
            site="public",
            attempt=1,
            error="e",
            retry_at=T0,  # type: ignore[arg-type]
            occurred_at=next(at),
        ),
        ev.JobStarted(job_id=job_id, site="public", attempt=2, worker="w", occurred_at=next(at)),  # type: ignore[arg-type]
        ev.JobProgress(job_id=job_id, attempt=2, percent=50, occurred_at=next(at)),
        ev.JobSucceeded(
            job_id=job_id,
            site="public",
            attempt=2,
            result={"ok": 1},  # type: ignore[arg-type]
            duration_seconds=0.1,
            occurred_at=next(at),
        ),
    ]


async def test_shuffled_and_duplicated_events_give_the_in_order_view(engine: AsyncEngine) -> None:
    in_order_id, shuffled_id = uuid.uuid4(), uuid.uuid4()
    for event in lifecycle(in_order_id):
        await apply_events(engine, [event])
    events = lifecycle(shuffled_id)
    arrival = events + events[2:5]
    random.Random(3).shuffle(arrival)
    fresh = 0
    for i in range(0, len(arrival), 3):
        fresh += len(await apply_events(engine, arrival[i : i + 3]))
    assert fresh == len(events)  # duplicates were skipped by event_id
    a = await queries.get_job(engine, in_order_id)
    b = await queries.get_job(engine, shuffled_id)
    assert a is not None
    assert b is not None
    ignore = {"job_id", "updated_at"}
    assert {k: v for k, v in asdict(a).items() if k not in ignore} == {
        k: v for k, v in asdict(b).items() if k not in ignore
    }
    assert (b.status, b.attempts, b.result) == ("succeeded", 2, {"ok": 1})
    history = await queries.job_history(engine, shuffled_id)
    assert [e["type"] for e in history] == [e.type for e in events]


async def test_events_for_a_job_not_seen_yet_are_kept(engine: AsyncEngine) -> None:
    job_id = uuid.uuid4()
    started = ev.JobStarted(job_id=job_id, site="private", attempt=1, worker="w")  # type: ignore[arg-type]
    await apply_events(engine, [started])
    view = await queries.get_job(engine, job_id)
    assert view is not None
    assert (view.status, view.job_type) == ("running", None)
    await apply_events(
        engine, [ev.JobSubmittedEvent(job_id=job_id, job_type="noop", occurred_at=T0)]
    )
    view = await queries.get_job(engine, job_id)
    assert view is not None
    assert (view.status, view.job_type) == ("running", "noop")


async def test_terminal_states_do_not_change(engine: AsyncEngine) -> None:
    job_id = uuid.uuid4()
    await apply_events(
        engine,
        [ev.JobCancelled(job_id=job_id, reason="stop", occurred_at=T0 + timedelta(seconds=5))],
    )
    await apply_events(
        engine,
        [
            ev.JobSucceeded(
                job_id=job_id,
                site="public",
                attempt=1,  # type: ignore[arg-type]
                duration_seconds=1,
                occurred_at=T0,
            )
        ],
    )
    view = await queries.get_job(engine, job_id)
    assert view is not None
    assert view.status == "cancelled"


async def test_pagination_walks_every_job_exactly_once_while_jobs_arrive(
    engine: AsyncEngine,
) -> None:
    job_type = f"page_{uuid.uuid4().hex[:8]}"
    ids = [uuid.uuid4() for _ in range(57)]
    await apply_events(
        engine,
        [
            ev.JobSubmittedEvent(
                job_id=j, job_type=job_type, occurred_at=T0 + timedelta(seconds=i % 9)
            )
            for i, j in enumerate(ids)
        ],
    )
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        items, cursor = await queries.list_jobs(engine, limit=5, cursor=cursor, job_type=job_type)
        seen += [i.job_id for i in items]
        # new jobs keep arriving (newer than everything): they never shift the walk
        await apply_events(engine, [ev.JobSubmittedEvent(job_id=uuid.uuid4(), job_type=job_type)])
        if cursor is None:
            break
    original = [j for j in seen if j in set(ids)]
    assert sorted(original) == sorted(ids)
    assert len(original) == len(set(original))
    keys = [
        (i.submitted_at, i.job_id)
        for i in (await queries.list_jobs(engine, limit=500, job_type=job_type))[0]
    ]
    assert keys == sorted(keys, reverse=True)


async def test_a_forged_cursor_is_refused(engine: AsyncEngine) -> None:
    with pytest.raises(queries.BadCursor):
        await queries.list_jobs(engine, limit=5, cursor="bm90LWEtY3Vyc29y")


async def test_listing_filters_by_submitted_time_range(engine: AsyncEngine) -> None:
    job_type = f"range_{uuid.uuid4().hex[:8]}"
    ids = [uuid.uuid4() for _ in range(5)]
    await apply_events(
        engine,
        [
            ev.JobSubmittedEvent(job_id=j, job_type=job_type, occurred_at=T0 + timedelta(hours=i))
            for i, j in enumerate(ids)
        ],
    )
    items, _ = await queries.list_jobs(
        engine,
        limit=50,
        job_type=job_type,
        submitted_after=T0 + timedelta(hours=1),
        submitted_before=T0 + timedelta(hours=3),
    )
    assert [i.job_id for i in items] == [ids[2], ids[1]]


async def test_a_malformed_copy_never_changes_an_accepted_job(engine: AsyncEngine) -> None:
    """A JobRejected for a running job changes nothing; one that arrived before the
    acceptance gives way to it."""
    running, late_accepted = uuid.uuid4(), uuid.uuid4()
    await apply_events(engine, lifecycle(running)[:3])
    await apply_events(engine, [ev.JobRejected(job_id=running, reason="malformed copy")])
    await apply_events(
        engine, [ev.JobRejected(job_id=late_accepted, reason="copy", occurred_at=T0)]
    )
    shown = await queries.get_job(engine, late_accepted)
    assert shown is not None
    assert shown.status == "rejected"
    await apply_events(engine, lifecycle(late_accepted)[:2])
    views = [await queries.get_job(engine, j) for j in (running, late_accepted)]
    assert [v.status for v in views if v] == ["running", "queued"]


async def test_batches_of_any_size_read_views_with_one_prepared_statement(
    engine: AsyncEngine,
) -> None:
    """A batch's views are read with `job_id = ANY($1)`: one statement, prepared once per
    connection, whatever the batch size (an IN list was a new statement per size)."""
    from sqlalchemy import text

    from services.status.adapters.postgres import PgUnitOfWork

    ids = [uuid.uuid4() for _ in range(120)]
    await apply_events(engine, [lifecycle(job_id)[0] for job_id in ids[:3]])
    async with engine.connect() as conn:
        uow = PgUnitOfWork(conn)
        for size in range(1, len(ids) + 1):
            found = await uow.jobs.folds(ids[:size])
            assert set(found) == set(ids[: min(size, 3)])
        prepared = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_prepared_statements "
                "WHERE statement LIKE 'SELECT jobs.job_id%FROM jobs%'"
            )
        )
    assert prepared == 1
