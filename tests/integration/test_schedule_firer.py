"""The schedule firer on the real Postgres, with an injected clock and a recording bus:
cron firing, racing replicas, catch-up after downtime, the outbox's re-publish."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.status.schedules import store
from services.status.schedules.claims import claim_due
from services.status.schedules.firer import Firer
from services.status.schedules.tables import schedule_firings, schedules
from services.status.schedules.timing import Cadence, job_id_for
from shared.bus import Bus

pytestmark = pytest.mark.connected
JOB = {"job_type": "noop", "params": {"n": 1}, "priority": 7}


class RecordingBus:
    """Stands in for shared.bus.Bus: keeps what would be published to jobs.intake."""

    def __init__(self) -> None:
        self.submitted: list[dict[str, Any]] = []
        self.broken = False

    async def submit(self, body: bytes) -> None:
        if self.broken:
            raise ConnectionError("broker away")
        self.submitted.append(json.loads(body))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def _row(engine: AsyncEngine, schedule_id: UUID) -> Any:
    async with engine.connect() as conn:
        query = select(schedules).where(schedules.c.schedule_id == schedule_id)
        return (await conn.execute(query)).one()


async def _firings(engine: AsyncEngine, schedule_id: UUID) -> list[Any]:
    async with engine.connect() as conn:
        query = (
            select(schedule_firings)
            .where(schedule_firings.c.schedule_id == schedule_id)
            .order_by(schedule_firings.c.fire_time)
        )
        return list((await conn.execute(query)).all())


async def test_a_cron_schedule_fires_at_its_local_time(engine: AsyncEngine) -> None:
    clock = [utc("2026-03-28 12:00")]
    bus = RecordingBus()
    firer = Firer(engine, cast(Bus, bus), 0.1, clock=lambda: clock[0])
    schedule_id, next_run_at = await store.create(
        engine,
        name="berlin nine",
        cadence=Cadence(cron="0 9 * * *", timezone="Europe/Berlin"),
        job=JOB,
        enabled=True,
        now=clock[0],
    )
    assert next_run_at == utc("2026-03-29 07:00")  # 09:00 CEST, the first day of summer time
    clock[0] = utc("2026-03-29 06:59:59")
    assert await firer.tick() == 0
    clock[0] = utc("2026-03-29 07:00:00.300000")
    assert await firer.tick() == 1
    job_id = job_id_for(schedule_id, utc("2026-03-29 07:00"))
    assert bus.submitted == [{**bus.submitted[0], **JOB, "job_id": str(job_id)}]
    row = await _row(engine, schedule_id)
    assert (row.last_run_at, row.next_run_at) == (utc("2026-03-29 07:00"), utc("2026-03-30 07:00"))
    assert await firer.tick() == 0  # published once, claimed once
    (firing,) = await _firings(engine, schedule_id)
    assert firing.published_at is not None
    await store.delete_schedule(engine, schedule_id)


async def test_racing_replicas_claim_each_fire_time_once(database_url: str) -> None:
    """Eight firers (each with its own connection pool) claim 30 due schedules at once."""
    engines = [create_async_engine(database_url) for _ in range(8)]
    now = utc("2026-06-01 12:00")
    ids = [
        (
            await store.create(
                engines[0],
                name=f"race {i}",
                cadence=Cadence(every_seconds=5),
                job=JOB,
                enabled=True,
                now=now - timedelta(seconds=5),
            )
        )[0]
        for i in range(30)
    ]
    try:
        claims = await asyncio.gather(*(claim_due(e, now) for e in engines))
        claimed = [f.schedule_id for batch in claims for f in batch if f.schedule_id in ids]
        assert sorted(claimed) == sorted(ids)  # every one claimed, none twice
        for schedule_id in ids:
            assert len(await _firings(engines[0], schedule_id)) == 1
            assert (await _row(engines[0], schedule_id)).next_run_at == now + timedelta(seconds=5)
    finally:
        for schedule_id in ids:
            await store.delete_schedule(engines[0], schedule_id)
        for e in engines:
            await e.dispose()


async def test_after_downtime_only_the_latest_missed_fire_time_runs(engine: AsyncEngine) -> None:
    created = utc("2026-07-01 08:00:00")
    schedule_id, first = await store.create(
        engine,
        name="catch up",
        cadence=Cadence(every_seconds=60),
        job=JOB,
        enabled=True,
        now=created,
    )
    assert first == utc("2026-07-01 08:01:00")
    back = utc("2026-07-01 09:30:20")  # 90 fire times were missed
    bus = RecordingBus()
    firer = Firer(engine, cast(Bus, bus), 0.1, clock=lambda: back)
    for _ in range(3):
        await firer.tick()
    (firing,) = await _firings(engine, schedule_id)
    assert firing.fire_time == utc("2026-07-01 09:30:00")
    assert [b["job_id"] for b in bus.submitted] == [str(firing.job_id)]
    assert (await _row(engine, schedule_id)).next_run_at == utc("2026-07-01 09:31:00")
    await store.delete_schedule(engine, schedule_id)


async def test_a_failed_publish_is_retried_under_the_same_job_id(engine: AsyncEngine) -> None:
    now = utc("2026-08-01 10:00:00")
    schedule_id, _ = await store.create(
        engine,
        name="outbox",
        cadence=Cadence(every_seconds=1),
        job=JOB,
        enabled=True,
        now=now - timedelta(seconds=1),
    )
    bus = RecordingBus()
    bus.broken = True
    firer = Firer(engine, cast(Bus, bus), 0.1, clock=lambda: now)
    with pytest.raises(ConnectionError):
        await firer.tick()
    (firing,) = await _firings(engine, schedule_id)
    assert firing.published_at is None  # claimed and kept: the publish is owed
    bus.broken = False
    # the next round publishes it, though no schedule is due at `now` any more
    assert await firer.tick() == 1
    assert [b["job_id"] for b in bus.submitted] == [str(firing.job_id)]
    assert firing.job_id == job_id_for(schedule_id, now)
    await store.delete_schedule(engine, schedule_id)


async def test_paused_and_deleted_schedules_do_not_fire(engine: AsyncEngine) -> None:
    now = utc("2026-09-01 10:00:00")
    schedule_id, _ = await store.create(
        engine,
        name="pause",
        cadence=Cadence(every_seconds=10),
        job=JOB,
        enabled=True,
        now=now - timedelta(seconds=10),
    )
    assert await store.set_enabled(engine, schedule_id, False, now)
    assert (await _row(engine, schedule_id)).next_run_at is None
    assert [f for f in await claim_due(engine, now) if f.schedule_id == schedule_id] == []
    later = now + timedelta(seconds=55)
    assert await store.set_enabled(engine, schedule_id, True, later)
    row = await _row(engine, schedule_id)
    assert row.next_run_at == utc("2026-09-01 10:01:05")  # what fell in the pause is skipped
    assert await store.delete_schedule(engine, schedule_id)
    assert not await store.delete_schedule(engine, schedule_id)
    assert await claim_due(engine, later + timedelta(hours=1)) == []


async def test_a_round_with_nothing_to_do_is_one_statement(engine: AsyncEngine) -> None:
    """Twice a second on every replica: most rounds find nothing due and nothing to
    publish, and say so with one statement, not the claim's and outbox's transactions."""
    from sqlalchemy import event

    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    bus = RecordingBus()
    later = utc("2030-01-01T00:00:00")
    firer = Firer(engine, cast(Bus, bus), 0.1, clock=lambda: later)
    await firer.tick()  # whatever the other tests left is published now
    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        assert await firer.tick() == 0
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert len(statements) == 1, statements
