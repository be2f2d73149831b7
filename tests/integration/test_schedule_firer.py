"""Firing schedules on the real Postgres, with an injected clock and a recording bus: cron
firing, racing replicas, catch-up after downtime, the outbox's re-publish."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.status.adapters.outbox import Relay
from services.status.adapters.postgres import unit_of_work
from services.status.adapters.tables import schedule_firings, schedules
from services.status.domain.schedules import Cadence, job_id_for
from services.status.entrypoints.background import anything_due
from services.status.service_layer import schedules as use_cases
from shared import topology
from shared.bus import Bus
from shared.messages import Envelope

pytestmark = pytest.mark.connected
JOB = {"job_type": "noop", "params": {"n": 1}, "priority": 7}


class RecordingBus:
    """Stands in for shared.bus.Bus: keeps what would be published to jobs.intake."""

    def __init__(self) -> None:
        self.submitted: list[dict[str, Any]] = []
        self.broken = False

    async def send(self, envelope: Envelope) -> None:
        if self.broken:
            raise ConnectionError("broker away")
        if envelope.routing_key == topology.SUBMITTED_KEY:
            self.submitted.append(json.loads(envelope.body))


class Firer:
    """What each status replica runs (entrypoints/background.py): claim what is due, then
    the outbox relay publishes it."""

    def __init__(self, engine: AsyncEngine, bus: RecordingBus, now: Any) -> None:
        self.engine, self.now = engine, now
        self.relay = Relay(engine, cast(Bus, bus))

    async def tick(self) -> int:
        if await anything_due(self.engine, self.now()):
            await use_cases.fire_due(unit_of_work(self.engine), self.now())
        return await self.relay.publish_pending()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def create(engine: AsyncEngine, now: datetime, cadence: Cadence, name: str = "s") -> Any:
    async with unit_of_work(engine)() as uow:
        return await use_cases.create(
            uow, name=name, cadence=cadence, job=JOB, enabled=True, now=now
        )


async def delete(engine: AsyncEngine, schedule_id: UUID) -> bool:
    async with unit_of_work(engine)() as uow:
        return await use_cases.delete(uow, schedule_id)


async def set_enabled(engine: AsyncEngine, schedule_id: UUID, enabled: bool, now: datetime) -> bool:
    async with unit_of_work(engine)() as uow:
        return await use_cases.set_enabled(uow, schedule_id, enabled, now)


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
    firer = Firer(engine, bus, lambda: clock[0])
    await firer.relay.publish_pending()  # what other tests left
    created = await create(
        engine, clock[0], Cadence(cron="0 9 * * *", timezone="Europe/Berlin"), "berlin nine"
    )
    assert created.next_run_at == utc("2026-03-29 07:00")  # 09:00 CEST, summer time's first day
    clock[0] = utc("2026-03-29 06:59:59")
    assert await firer.tick() == 0
    clock[0] = utc("2026-03-29 07:00:00.300000")
    assert await firer.tick() == 1
    job_id = job_id_for(created.schedule_id, utc("2026-03-29 07:00"))
    assert bus.submitted == [{**bus.submitted[0], **JOB, "job_id": str(job_id)}]
    row = await _row(engine, created.schedule_id)
    assert (row.last_run_at, row.next_run_at) == (utc("2026-03-29 07:00"), utc("2026-03-30 07:00"))
    assert await firer.tick() == 0  # published once, claimed once
    assert len(await _firings(engine, created.schedule_id)) == 1
    await delete(engine, created.schedule_id)


async def test_racing_replicas_claim_each_fire_time_once(database_url: str) -> None:
    """Eight firers (each with its own connection pool) claim 30 due schedules at once."""
    engines = [create_async_engine(database_url) for _ in range(8)]
    now = utc("2026-06-01 12:00")
    ids = [
        (await create(engines[0], now - timedelta(seconds=5), Cadence(every_seconds=5))).schedule_id
        for _ in range(30)
    ]
    try:
        claims = await asyncio.gather(*(use_cases.fire_due(unit_of_work(e), now) for e in engines))
        claimed = [f.schedule_id for batch in claims for f in batch if f.schedule_id in ids]
        assert sorted(claimed) == sorted(ids)  # every one claimed, none twice
        for schedule_id in ids:
            assert len(await _firings(engines[0], schedule_id)) == 1
            assert (await _row(engines[0], schedule_id)).next_run_at == now + timedelta(seconds=5)
    finally:
        for schedule_id in ids:
            await delete(engines[0], schedule_id)
        for e in engines:
            await e.dispose()


async def test_after_downtime_only_the_latest_missed_fire_time_runs(engine: AsyncEngine) -> None:
    created = await create(engine, utc("2026-07-01 08:00:00"), Cadence(every_seconds=60))
    assert created.next_run_at == utc("2026-07-01 08:01:00")
    back = utc("2026-07-01 09:30:20")  # 90 fire times were missed
    bus = RecordingBus()
    firer = Firer(engine, bus, lambda: back)
    await firer.relay.publish_pending()
    bus.submitted.clear()
    for _ in range(3):
        await firer.tick()
    (firing,) = await _firings(engine, created.schedule_id)
    assert firing.fire_time == utc("2026-07-01 09:30:00")
    assert [b["job_id"] for b in bus.submitted] == [str(firing.job_id)]
    assert (await _row(engine, created.schedule_id)).next_run_at == utc("2026-07-01 09:31:00")
    await delete(engine, created.schedule_id)


async def test_a_failed_publish_is_retried_under_the_same_job_id(engine: AsyncEngine) -> None:
    now = utc("2026-08-01 10:00:00")
    bus = RecordingBus()
    firer = Firer(engine, bus, lambda: now)
    await firer.relay.publish_pending()
    bus.submitted.clear()
    created = await create(engine, now - timedelta(seconds=1), Cadence(every_seconds=1))
    bus.broken = True
    assert await firer.tick() == 0  # claimed and kept in the outbox: the publish is owed
    (firing,) = await _firings(engine, created.schedule_id)
    bus.broken = False
    # the next round publishes it, though no schedule is due at `now` any more
    assert await firer.tick() == 1
    assert [b["job_id"] for b in bus.submitted] == [str(firing.job_id)]
    assert firing.job_id == job_id_for(created.schedule_id, now)
    await delete(engine, created.schedule_id)


async def test_a_deleted_schedule_withdraws_its_unpublished_firing(engine: AsyncEngine) -> None:
    now = utc("2026-08-02 10:00:00")
    bus = RecordingBus()
    firer = Firer(engine, bus, lambda: now)
    await firer.relay.publish_pending()
    bus.submitted.clear()
    created = await create(engine, now - timedelta(seconds=1), Cadence(every_seconds=1))
    bus.broken = True
    await firer.tick()  # claimed, not published
    assert await delete(engine, created.schedule_id)
    bus.broken = False
    assert await firer.tick() == 0
    assert bus.submitted == []


async def test_paused_and_deleted_schedules_do_not_fire(engine: AsyncEngine) -> None:
    now = utc("2026-09-01 10:00:00")
    created = await create(engine, now - timedelta(seconds=10), Cadence(every_seconds=10))
    schedule_id = created.schedule_id
    assert await set_enabled(engine, schedule_id, False, now)
    assert (await _row(engine, schedule_id)).next_run_at is None
    fired = await use_cases.fire_due(unit_of_work(engine), now)
    assert [f for f in fired if f.schedule_id == schedule_id] == []
    later = now + timedelta(seconds=55)
    assert await set_enabled(engine, schedule_id, True, later)
    row = await _row(engine, schedule_id)
    assert row.next_run_at == utc("2026-09-01 10:01:05")  # what fell in the pause is skipped
    assert await delete(engine, schedule_id)
    assert not await delete(engine, schedule_id)
    assert await use_cases.fire_due(unit_of_work(engine), later + timedelta(hours=1)) == []


async def test_a_round_with_nothing_due_is_one_statement(engine: AsyncEngine) -> None:
    """Twice a second on every replica: most rounds find nothing due, and say so with one
    statement, not a claim's transaction."""
    from sqlalchemy import event

    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    later = utc("2030-01-01T00:00:00")
    await use_cases.fire_due(unit_of_work(engine), later)  # whatever other tests left
    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        assert not await anything_due(engine, later)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert len(statements) == 1, statements
