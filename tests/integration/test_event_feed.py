"""The global event feed on Postgres (GET /events' query): along its cursor no event is
skipped or repeated while transactions that record events commit in any order."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.status.adapters import queries
from services.status.adapters.postgres import PgUnitOfWork, unit_of_work
from shared.contracts import events as ev

pytestmark = pytest.mark.connected


def submitted() -> ev.JobSubmittedEvent:
    return ev.JobSubmittedEvent(job_id=uuid.uuid4(), job_type="noop")


async def follow(engine: AsyncEngine, position: tuple[int, int], limit: int = 100) -> Any:
    """Read the feed from `position` until a short page: the events and where it ended."""
    seen: list[str] = []
    while True:
        items, position = await queries.event_feed(engine, after=position, limit=limit)
        seen += [e["event_id"] for _, e in items]
        if len(items) < limit:
            return seen, position


async def now(engine: AsyncEngine) -> tuple[int, int]:
    """The feed's position after every event recorded so far."""
    return (await follow(engine, queries.FEED_START, limit=1000))[1]


async def test_an_event_an_open_transaction_holds_is_not_passed_by(engine: AsyncEngine) -> None:
    """A writes its event, B writes its own and commits while A is still open: a reader
    then must not move past A's event (B's is held back until A ends), and gets both,
    once each, when A commits."""
    start = await now(engine)
    a, b = submitted(), submitted()
    units = unit_of_work(engine)
    async with units() as first:
        await first.jobs.add_events([a])
        async with units() as second:
            await second.jobs.add_events([b])
        seen, position = await follow(engine, start)
        assert seen == []  # B is committed but behind the horizon while A is open
    seen_after, _ = await follow(engine, position)
    assert seen_after == [str(a.event_id), str(b.event_id)]


async def test_an_old_transaction_writing_its_event_last_is_not_passed_by(
    engine: AsyncEngine,
) -> None:
    """B's transaction begins first, A's second; A records its event, then B (a higher
    sequence number than A's), and B commits while A is open. Sequence order alone would
    hand out B and leave A's smaller number behind the reader for good."""
    start = await now(engine)
    a, b = submitted(), submitted()
    units = unit_of_work(engine)
    async with units() as older:
        assert isinstance(older, PgUnitOfWork)
        await older.conn.execute(text("SELECT pg_current_xact_id()"))  # B's id, taken first
        async with units() as younger:
            await younger.jobs.add_events([a])
            await older.jobs.add_events([b])
            await older.conn.commit()
            seen, position = await follow(engine, start)
            assert seen == [str(b.event_id)]  # final: B's transaction is below the horizon
        # A commits here
    seen_after, _ = await follow(engine, position)
    assert seen_after == [str(a.event_id)]


async def test_a_reader_sees_every_event_once_while_many_transactions_commit(
    database_url: str,
) -> None:
    """Eight writers record 1,600 events in transactions of 1 to 20 events that stay open
    for a random while; a reader follows the cursor all along, in small pages."""
    engine = create_async_engine(database_url, pool_size=12)
    try:
        start = await now(engine)
        units = unit_of_work(engine)
        written: list[str] = []
        rng = random.Random(24)

        async def writer() -> None:
            left = 200
            while left:
                events = [submitted() for _ in range(min(left, rng.randint(1, 20)))]
                left -= len(events)
                async with units() as uow:
                    for event in events:
                        await uow.jobs.add_events([event])
                        await asyncio.sleep(rng.random() * 0.003)
                written.extend(str(e.event_id) for e in events)

        seen: list[str] = []
        done = asyncio.Event()

        async def reader() -> None:
            position = start
            while True:
                finished = done.is_set()
                items, position = await queries.event_feed(engine, after=position, limit=7)
                seen.extend(e["event_id"] for _, e in items)
                if finished and len(items) < 7:
                    return
                await asyncio.sleep(0.001)

        reading = asyncio.create_task(reader())
        await asyncio.gather(*(writer() for _ in range(8)))
        done.set()
        await reading
        assert len(written) == 1600
        assert len(seen) == len(set(seen)), "an event was read twice"
        assert set(seen) == set(written), f"{len(set(written) - set(seen))} events skipped"
    finally:
        await engine.dispose()


async def test_filters_and_cursors(engine: AsyncEngine) -> None:
    """`type` and `job_type` filter; a short page's cursor moves past what it scanned;
    a cursor the API did not hand out is BadCursor."""
    start = await now(engine)
    job_id = uuid.uuid4()
    async with unit_of_work(engine)() as uow:
        await uow.jobs.add_events(
            [
                ev.JobSubmittedEvent(job_id=job_id, job_type="transcode"),
                ev.JobRouted(job_id=job_id, site="private", rule="r", reason="r", priority=5),  # type: ignore[arg-type]
            ]
        )
        await uow.conn.execute(  # type: ignore[attr-defined]
            text(
                "INSERT INTO jobs (job_id, status, job_type, listed_at) "
                "VALUES (:j, 'queued', 'transcode', now())"
            ),
            {"j": job_id},
        )
    routed, after = await queries.event_feed(engine, after=start, limit=10, types=["JobRouted"])
    assert [e["type"] for _, e in routed] == ["JobRouted"]
    of_type, _ = await queries.event_feed(engine, after=start, limit=10, job_type="transcode")
    assert [e["type"] for _, e in of_type] == ["JobSubmitted", "JobRouted"]
    none, _ = await queries.event_feed(engine, after=start, limit=10, job_type="noop-x")
    assert none == []
    assert (await queries.event_feed(engine, after=after, limit=10))[0] == []
    for bad in ("x", queries.encode_cursor("a", "1"), queries.encode_cursor(2**64, 1)):
        with pytest.raises(queries.BadCursor):
            queries.feed_position(bad)
