"""Dead letters end jobs; groups compensate through the outbox, by the event path or the
sweep alone; forged worker events are refused. Real broker and database."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.status.adapters import queries
from services.status.adapters.leader import Leadership, every
from services.status.adapters.outbox import Relay
from services.status.adapters.postgres import unit_of_work
from services.status.adapters.tables import group_members, jobs, outbox
from services.status.domain.ids import compensation_job_id
from services.status.service_layer import groups
from shared import messages, topology
from shared.bus import Bus, make_broker
from shared.contracts import events as ev
from shared.contracts.jobs import JobSubmitted
from tests.integration.ingest_harness import eventually, status_consumers
from tests.integration.store_helpers import apply_events

pytestmark = pytest.mark.connected
COMPENSATE = {"job_type": "noop", "params": {"undo": 1}}


async def create_group(
    engine: AsyncEngine, group_id: uuid.UUID, members: list[tuple[JobSubmitted, Any]]
) -> None:
    """The group, its members and their submissions in one transaction (nothing sent yet)."""
    async with unit_of_work(engine)() as uow:
        await groups.create(uow, group_id, members)


async def relay(engine: AsyncEngine, bus: Bus) -> int:
    return await Relay(engine, bus).publish_pending()


def job(**fields: Any) -> JobSubmitted:
    return JobSubmitted(job_id=uuid.uuid4(), job_type="noop", **fields)


def lifecycle(job_id: uuid.UUID, site: str = "private") -> list[ev.Event]:
    return [
        ev.JobSubmittedEvent(job_id=job_id, job_type="noop"),
        ev.JobRouted(job_id=job_id, site=site, rule="default", reason="r", priority=5),  # type: ignore[arg-type]
    ]


def succeeded(job_id: uuid.UUID, site: str = "private") -> ev.Event:
    return ev.JobSucceeded(job_id=job_id, site=site, attempt=1, duration_seconds=0.1)  # type: ignore[arg-type]


class IntakeCopy:
    """A queue of this test's own bound to `jobs.intake`: what was submitted, by job id."""

    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        self.name = f"test-intake-{uuid.uuid4().hex[:8]}"
        self.seen: set[str] = set()
        self.received = 0  # messages, duplicates included

    async def declare(self) -> None:
        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(
                topology.INTAKE.name, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(self.name, auto_delete=False)
            await queue.bind(exchange, routing_key=topology.SUBMITTED_KEY)

    async def job_ids(self) -> set[str]:
        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(self.name)
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                self.seen.add(json.loads(message.body)["job_id"])
                self.received += 1
        return self.seen

    async def delete(self) -> None:
        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(self.name)


@pytest.fixture
async def intake(amqp_url: str) -> AsyncIterator[IntakeCopy]:
    copy = IntakeCopy(amqp_url)
    await copy.declare()
    yield copy
    await copy.delete()


async def compensation_queued(engine: AsyncEngine, member: uuid.UUID) -> uuid.UUID | None:
    async with engine.connect() as conn:
        return await conn.scalar(
            select(group_members.c.compensation_job_id).where(group_members.c.job_id == member)
        )


async def compensation_sent(engine: AsyncEngine, compensation: uuid.UUID) -> bool:
    async with engine.connect() as conn:
        sent = await conn.scalar(
            select(outbox.c.sent_at).where(outbox.c.message_id == str(compensation))
        )
    return sent is not None


@pytest.fixture
async def bus(amqp_url: str) -> AsyncIterator[Bus]:
    broker = make_broker(amqp_url, 10)
    await broker.connect()
    await topology.declare(broker, topology.status_bindings())
    yield Bus(broker)
    await broker.stop()


async def test_group_creation_writes_members_and_outbox_in_one_transaction(
    intake: IntakeCopy, engine: AsyncEngine, bus: Bus
) -> None:
    """A crash after the commit and before the publish loses nothing: the relay sends it."""
    a, b = job(), job()
    group_id = uuid.uuid4()
    await create_group(engine, group_id, [(a, COMPENSATE), (b, None)])  # then the crash
    assert str(a.job_id) not in await intake.job_ids()
    assert await relay(engine, bus) >= 2
    assert await relay(engine, bus) == 0  # sent once, marked sent
    assert {str(a.job_id), str(b.job_id)} <= await intake.job_ids()


async def test_compensation_after_a_cancelled_member_by_the_event_path_alone(
    amqp_url: str, database_url: str, intake: IntakeCopy
) -> None:
    async with status_consumers(amqp_url, database_url) as status:  # no sweep runs here
        a, b = job(), job()
        group_id = uuid.uuid4()
        async with status.units() as uow:  # the relay publishes it once committed
            await groups.create(uow, group_id, [(a, COMPENSATE), (b, None)])
        for event in [*lifecycle(a.job_id), *lifecycle(b.job_id), succeeded(a.job_id)]:
            await status.bus.event(event)
        started = time.monotonic()
        await status.bus.event(ev.JobCancelled(job_id=b.job_id, reason="operator"))
        compensation = await eventually(
            lambda: compensation_queued(status.engine, a.job_id), 10, "compensation decided"
        )
        await eventually(
            lambda: compensation_sent(status.engine, compensation), 10, "compensation published"
        )
        took = time.monotonic() - started
    assert compensation == compensation_job_id(group_id, a.job_id)
    assert str(compensation) in await intake.job_ids()
    assert took < 5, f"the event path took {took:.1f} s"


async def test_compensation_by_the_sweep_alone(amqp_url: str, database_url: str, bus: Bus) -> None:
    """An ending the projection never saw (a view made terminal by another writer):
    only the sweep can find it."""
    engine = create_async_engine(database_url, pool_size=2)
    leadership = Leadership(engine, key=int(uuid.uuid4().int % 2**62))
    try:
        a, b = job(), job()
        group_id = uuid.uuid4()
        await create_group(engine, group_id, [(a, COMPENSATE), (b, None)])
        await relay(engine, bus)
        await apply_events(engine, [*lifecycle(a.job_id), succeeded(a.job_id)])
        await apply_events(engine, [*lifecycle(b.job_id)])
        units = unit_of_work(engine)
        sweeper = asyncio.create_task(every(0.5, lambda: groups.sweep(units), leadership))
        started = time.monotonic()
        async with engine.begin() as conn:  # not through the projection
            await conn.execute(
                jobs.update().where(jobs.c.job_id == b.job_id).values(status="dead_lettered")
            )
        compensation = await eventually(
            lambda: compensation_queued(engine, a.job_id), 10, "compensation decided"
        )
        took = time.monotonic() - started
        sweeper.cancel()
        assert compensation == compensation_job_id(group_id, a.job_id)
        assert took < 3, f"the sweep took {took:.1f} s (runs every 0.5 s)"
        assert await groups.sweep(units) == 0  # a settled group is not read again
    finally:
        await leadership.release()
        await engine.dispose()


async def test_a_broker_dead_lettered_member_ends_dead_lettered_and_its_group_compensates(
    amqp_url: str, database_url: str
) -> None:
    async with status_consumers(amqp_url, database_url) as status:
        a, b = job(), job()
        group_id = uuid.uuid4()
        async with status.units() as uow:  # the relay publishes it once committed
            await groups.create(uow, group_id, [(a, COMPENSATE), (b, None)])
        for event in [*lifecycle(a.job_id), *lifecycle(b.job_id), succeeded(a.job_id)]:
            await status.bus.event(event)

        async def queued() -> bool:
            view = await queries.get_job(status.engine, b.job_id)
            return view is not None and view.status == "queued"

        await eventually(queued, 10, "b queued")
        # the broker itself dead-letters b's placed copy (a queue whose messages expire)
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            doomed = await channel.declare_queue(
                f"doomed-{uuid.uuid4().hex[:6]}",
                arguments={"x-message-ttl": 0, "x-dead-letter-exchange": "jobs.dlx"},
            )
            body = json.dumps({"job_id": str(b.job_id), "job_type": "noop", "attempt": 1})
            await channel.default_exchange.publish(
                aio_pika.Message(body.encode()), routing_key=doomed.name
            )

            async def dead_lettered() -> bool:
                view = await queries.get_job(status.engine, b.job_id)
                return view is not None and view.status == "dead_lettered"

            await eventually(dead_lettered, 15, "b dead_lettered")
            await doomed.delete()
        compensation = await eventually(
            lambda: compensation_queued(status.engine, a.job_id), 10, "compensation decided"
        )
        letters, _ = await queries.list_dead_letters(status.engine, limit=50)
    assert compensation == compensation_job_id(group_id, a.job_id)
    mine = [d for d in letters if d["job_id"] == b.job_id]
    assert [d["reason"] for d in mine] == ["expired"]


async def test_two_relays_at_once_publish_each_outbox_row_once(
    intake: IntakeCopy, database_url: str, bus: Bus
) -> None:
    engines = [create_async_engine(database_url, pool_size=2) for _ in range(2)]
    try:
        await relay(engines[0], bus)  # rows earlier tests of this module left unsent
        await intake.job_ids()
        intake.received = 0
        jobs_ = [job() for _ in range(120)]
        async with unit_of_work(engines[0])() as uow:
            for j in jobs_:
                await uow.outbox.add(messages.submission(j))
        counts = await asyncio.gather(*(relay(e, bus) for e in engines))
        assert sum(counts) >= len(jobs_)
        ids = await eventually(lambda: _at_least(intake, len(jobs_)), 10, "every row published")
        assert {str(j.job_id) for j in jobs_} <= ids
        await asyncio.sleep(0.5)
        await intake.job_ids()
        assert intake.received == len(jobs_)  # none twice
    finally:
        for e in engines:
            await e.dispose()


async def _at_least(intake: IntakeCopy, n: int) -> set[str]:
    ids = await intake.job_ids()
    return ids if len(ids) >= n else set()
