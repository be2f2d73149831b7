"""Several status replicas on one database: same views, one leader, bounded storage."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.status.adapters import queries
from services.status.adapters.leader import Leadership
from services.status.adapters.postgres import unit_of_work
from services.status.adapters.tables import dead_letters, job_events, jobs, outbox, schedule_firings
from services.status.domain.arrivals import Arrival
from services.status.domain.projection import reduce
from services.status.entrypoints.consumers.projector import Projector
from services.status.service_layer import retention
from shared.contracts import events as ev
from tests.integration.ingest_harness import eventually
from tests.integration.store_helpers import apply_events

pytestmark = pytest.mark.connected
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def lifecycle(job_id: uuid.UUID) -> list[ev.Event]:
    at = iter(T0 + timedelta(milliseconds=i) for i in range(100))
    site = "private"
    return [
        ev.JobSubmittedEvent(job_id=job_id, job_type="noop", occurred_at=next(at)),
        ev.JobRouted(
            job_id=job_id, site=site, rule="r", reason="r", priority=5, occurred_at=next(at)
        ),  # type: ignore[arg-type]
        ev.JobStarted(job_id=job_id, site=site, attempt=1, worker="w", occurred_at=next(at)),  # type: ignore[arg-type]
        ev.JobProgress(job_id=job_id, attempt=1, percent=50, occurred_at=next(at)),
        ev.JobFailed(
            job_id=job_id, site=site, attempt=1, error="e", retry_at=T0, occurred_at=next(at)
        ),  # type: ignore[arg-type]
        ev.JobStarted(job_id=job_id, site=site, attempt=2, worker="w", occurred_at=next(at)),  # type: ignore[arg-type]
        ev.JobSucceeded(
            job_id=job_id, site=site, attempt=2, duration_seconds=1, occurred_at=next(at)
        ),  # type: ignore[arg-type]
    ]


async def test_two_projectors_on_one_database_give_the_in_order_views(database_url: str) -> None:
    """Each replica gets a random part of every job's events, at the same moment, in one
    batch each (two transactions over the same jobs at once): no update is lost."""
    engines = [create_async_engine(database_url, pool_size=2) for _ in range(2)]
    projectors = [Projector(unit_of_work(e), batch_size=1000, batch_wait=0.2) for e in engines]
    try:
        for p in projectors:
            await p.start()
        for round_ in range(4):  # the race is timing-dependent: several rounds
            ids = [uuid.uuid4() for _ in range(60)]
            shares: list[list[ev.Event]] = [[], []]
            rng = random.Random(round_)
            for job_id in ids:
                for event in lifecycle(job_id):
                    shares[rng.randrange(2)].append(event)
            for share in shares:
                rng.shuffle(share)
            await asyncio.gather(
                *(
                    p.project(Arrival(e))
                    for p, share in zip(projectors, shares, strict=True)
                    for e in share
                )
            )
            for job_id in ids:
                view = await queries.get_job(engines[0], job_id)
                expected = reduce(job_id, lifecycle(job_id)).view
                assert view is not None
                assert (view.status, view.attempts, view.progress) == (
                    expected.status,
                    expected.attempts,
                    expected.progress,
                )
                assert view.finished_at == expected.finished_at
    finally:
        for p in projectors:
            await p.stop()
        for e in engines:
            await e.dispose()


async def test_one_leader_and_another_takes_over_when_it_dies(database_url: str) -> None:
    key = uuid.uuid4().int % 2**62
    engines = [create_async_engine(database_url, pool_size=2) for _ in range(2)]
    first, second = (Leadership(e, key=key) for e in engines)
    try:
        assert await first.check()
        assert not await second.check()
        assert await first.check()  # still leading: nothing changed
        assert first._conn is not None
        pid = await first._conn.scalar(text("SELECT pg_backend_pid()"))
        async with engines[1].connect() as conn:  # the leader's session dies (kill -9)
            await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        await eventually(second.check, 10, "the other replica leads")
        assert not await first.check()
    finally:
        await first.release()
        await second.release()
        for e in engines:
            await e.dispose()


async def test_retention_deletes_old_terminal_jobs_and_keeps_the_rest(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH", 2)  # several small batches
    now = datetime.now(UTC)
    old = [uuid.uuid4() for _ in range(5)]
    running, recent = uuid.uuid4(), uuid.uuid4()
    days_ago = now - timedelta(days=3)
    for job_id in old:
        await apply_events(
            engine,
            [
                ev.JobSubmittedEvent(job_id=job_id, job_type="noop", occurred_at=days_ago),
                ev.JobCancelled(job_id=job_id, reason="x", occurred_at=days_ago),
            ],
        )
    await apply_events(
        engine, [ev.JobSubmittedEvent(job_id=running, job_type="noop", occurred_at=days_ago)]
    )
    await apply_events(engine, [ev.JobCancelled(job_id=recent, reason="x", occurred_at=now)])
    async with engine.begin() as conn:
        await conn.execute(
            insert(dead_letters).values(
                id=str(uuid.uuid4()),
                job_id=old[0],
                reason="x",
                dead_lettered_at=days_ago,
                body="{}",
                headers={},
            )
        )
        sent = {"exchange": "jobs.intake", "routing_key": "job.submitted", "body": b"{}"}
        await conn.execute(insert(outbox).values(message_id="m", sent_at=days_ago, **sent))
        await conn.execute(insert(outbox).values(message_id="owed", sent_at=None, **sent))
        firing = {"schedule_id": uuid.uuid4(), "claimed_at": days_ago}
        await conn.execute(
            insert(schedule_firings).values(
                [
                    {**firing, "job_id": old[0], "fire_time": days_ago},
                    {**firing, "job_id": running, "fire_time": now},
                ]
            )
        )
    deleted = await retention.purge(unit_of_work(engine), timedelta(days=1), now)
    assert deleted >= len(old) + 2
    async with engine.connect() as conn:
        left = set(
            await conn.scalars(
                select(jobs.c.job_id).where(jobs.c.job_id.in_([*old, running, recent]))
            )
        )
        events_left = await conn.scalar(
            select(func.count()).select_from(job_events).where(job_events.c.job_id.in_(old))
        )
        letters_left = await conn.scalar(
            select(func.count()).select_from(dead_letters).where(dead_letters.c.job_id == old[0])
        )
        sent_left = await conn.scalar(
            select(func.count())
            .select_from(outbox)
            .where(outbox.c.sent_at < now - timedelta(days=1))
        )
        owed_left = await conn.scalar(
            select(func.count()).select_from(outbox).where(outbox.c.message_id == "owed")
        )
        firings_left = set(await conn.scalars(select(schedule_firings.c.job_id)))
    assert left == {running, recent}  # old terminal jobs gone; running and recent kept
    assert (events_left, letters_left, sent_left, owed_left) == (0, 0, 0, 1)  # unsent stays
    assert firings_left == {running}  # an old firing goes, a recent one stays
