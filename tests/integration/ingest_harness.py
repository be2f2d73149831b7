"""The status service's consuming side on a real broker and database, in this process."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import aio_pika
import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from devtools import environment
from services.status.adapters.outbox import Relay
from services.status.adapters.postgres import unit_of_work
from services.status.adapters.tables import dead_letters
from services.status.entrypoints.consumers import dead_letters as dead_letter_consumer
from services.status.entrypoints.consumers import events as event_consumer
from services.status.entrypoints.consumers.projector import Projector
from services.status.service_layer.unit_of_work import UnitOfWorkFactory
from shared import topology
from shared.bus import Bus, make_broker
from shared.identity import WorkerUsers


@dataclass
class Harness:
    engine: AsyncEngine
    bus: Bus
    projector: Projector
    units: UnitOfWorkFactory
    relay: Relay


@asynccontextmanager
async def status_consumers(
    amqp_url: str,
    database_url: str,
    hold_seconds: float = 0.5,
    workers: WorkerUsers | None = None,
) -> AsyncIterator[Harness]:
    """The events and dead-letter subscribers, as `python -m services.status` wires them
    (the projection relaying the compensations it queues), with a short database hold so
    the hand-back path runs."""
    engine = create_async_engine(database_url, pool_pre_ping=True, pool_size=3)
    broker = make_broker(amqp_url, 50)
    bus = Bus(broker)
    relay = Relay(engine, bus, poll_seconds=0.5)
    units = unit_of_work(engine, on_outbox=relay.wake)
    projector = Projector(units, 50, 0.02, hold_seconds=hold_seconds)
    users = workers or WorkerUsers()
    event_consumer.subscribe(broker, bus, projector, users)
    dead_letter_consumer.subscribe(broker, units, users, hold_seconds)
    await projector.start()
    await broker.connect()
    await topology.declare(broker, topology.status_bindings())
    await broker.start()
    relaying = asyncio.create_task(relay.run())
    try:
        yield Harness(engine, bus, projector, units, relay)
    finally:
        relaying.cancel()
        await asyncio.gather(relaying, return_exceptions=True)
        await broker.stop()
        await projector.stop()
        await engine.dispose()


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 20, what: str = "condition"
) -> Any:
    """Poll `check` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await check()
        except Exception as exc:  # the database may still be coming back
            last = exc
        if last and not isinstance(last, Exception):
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} not reached in {timeout} s; last: {last!r}")


def vhost_of(amqp_url: str) -> str:
    return urlsplit(amqp_url).path.lstrip("/")


async def queue_counts(amqp_url: str, name: str) -> tuple[int, int]:
    """(ready, unacked) of a queue, from the management API (sampled every few seconds)."""
    vhost = quote(vhost_of(amqp_url), safe="")
    async with httpx.AsyncClient(base_url=environment.MANAGEMENT, auth=environment.ADMIN) as http:
        body = (await http.get(f"/api/queues/{vhost}/{quote(name, safe='')}")).json()
    return int(body.get("messages_ready", -1)), int(body.get("messages_unacknowledged", -1))


async def settled(amqp_url: str, *names: str) -> bool:
    counts = [await queue_counts(amqp_url, n) for n in names]
    return all(c == (0, 0) for c in counts)


async def dead_letter_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(dead_letters)) or 0)


async def publish_raw(
    amqp_url: str, exchange: str, routing_key: str, *messages: aio_pika.Message
) -> None:
    """Publish exactly these bytes and headers (confirmed), as an outsider would."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(exchange)
        for message in messages:
            await target.publish(message, routing_key=routing_key)


def psql(sql: str) -> None:
    subprocess.run(
        ["psql", environment.PG_ADMIN_DSN, "-v", "ON_ERROR_STOP=1", "-qc", sql],
        check=True,
        capture_output=True,
    )


async def ready_after_stop(amqp_url: str, *names: str) -> dict[str, int]:
    """Exact ready counts (passive declare). Once the consumers have stopped, anything they
    had left unacked is back in `ready`, so zero here means nothing was left unacked."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        counts = {}
        for name in names:
            queue = await channel.declare_queue(name, passive=True)
            counts[name] = queue.declaration_result.message_count or 0
        return counts
