"""The status service's one composition root: settings -> engines and broker -> the parts the
role starts (the HTTP API, the write side, or both).

Everything the service opens is opened here and closed here; tests build the same parts
with their own settings (and the in-memory broker where they want one).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Literal

from fastapi import FastAPI
from faststream.rabbit import RabbitBroker
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.adapters.outbox import Relay
from services.status.adapters.postgres import unit_of_work
from services.status.entrypoints.background import Background
from services.status.entrypoints.consumers import dead_letters, events
from services.status.entrypoints.consumers import workers as worker_messages
from services.status.entrypoints.consumers.projector import Projector
from services.status.entrypoints.http import app as http_app
from services.status.entrypoints.http import system
from services.status.entrypoints.http.deps import Resources
from services.status.entrypoints.http.streams import StreamSlots
from services.status.entrypoints.write_side import write_side
from services.status.service_layer.unit_of_work import UnitOfWorkFactory
from shared import topology
from shared.bus import Bus, make_broker
from shared.contracts.batches import STATUS_SOURCE
from shared.database import make_engine
from shared.identity import WorkerUsers
from shared.placement.rules import load_rules
from shared.queue_depth import QueueDepths
from shared.settings import StatusSettings

log = logging.getLogger("hybridq.status")
WARM_CONNECTIONS = 6
WARM_SECONDS = 5.0
DEPTHS_IDLE_AFTER_SECONDS = 30.0
"""/stats's queue depths are kept fresh while it is read, and not read from the broker
after this long without a /stats request (shared/queue_depth.py)."""

Role = Literal["all", "api", "split"]
"""`all`: the HTTP API and the write side in one process (tests); `api`: the HTTP API only,
the write side running elsewhere; `split` (what `python -m services.status` runs): the HTTP
API here, the write side in a child process (entrypoints/write_side.py)."""


@dataclass
class Messaging:
    """The broker connection and the one publisher of a status process."""

    broker: RabbitBroker
    bus: Bus


def messaging(settings: StatusSettings, prefetch: int | None = None) -> Messaging:
    broker = make_broker(settings.amqp_url, prefetch or settings.batch_size)
    return Messaging(broker, Bus(broker, source=STATUS_SOURCE))


@dataclass
class Store:
    """The write engine, its units of work and the outbox relay that publishes after them."""

    engine: AsyncEngine
    units: UnitOfWorkFactory
    relay: Relay


def store(settings: StatusSettings, engine: AsyncEngine, bus: Bus) -> Store:
    relay = Relay(engine, bus, settings.outbox_poll_seconds)
    return Store(engine, unit_of_work(engine, on_outbox=relay.wake), relay)


@asynccontextmanager
async def projecting(
    settings: StatusSettings, engine: AsyncEngine, m: Messaging
) -> AsyncIterator[None]:
    """The write side: the consumers (events, dead letters, worker messages) and the
    background tasks, on `m`'s broker (started here, stopped on the way out after the tasks
    that publish)."""
    # the projection's own pool, without the pre-ping round trip per transaction: a
    # connection lost with the database fails its batch, which is held and retried
    # (db_errors.db_retrying) on a new connection
    projection_engine = make_engine(settings.database_url, pool_size=2, max_overflow=2)
    written = store(settings, engine, m.bus)
    projector = Projector(
        unit_of_work(projection_engine, on_outbox=written.relay.wake),
        settings.batch_size,
        settings.batch_wait_seconds,
        hold_seconds=settings.db_hold_seconds,
    )
    kind = settings.work_queue_type
    workers = WorkerUsers.from_settings(settings)
    events.subscribe(m.broker, m.bus, projector, workers, kind)
    dead_letters.subscribe(m.broker, written.units, workers, settings.db_hold_seconds, kind)
    worker_messages.subscribe(m.broker, m.bus, written.units, settings.db_hold_seconds, kind)
    background = Background(engine, written.units, written.relay, settings)
    await projector.start()
    await m.broker.connect()
    await topology.declare(m.broker, topology.status_bindings(kind))
    await m.broker.start()
    background.start()
    try:
        yield
    finally:
        await background.stop()
        await m.broker.stop()
        await projector.stop()
        await projection_engine.dispose()


def create_app(settings: StatusSettings | None = None, role: Role = "all") -> FastAPI:
    settings = settings or StatusSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rules = load_rules(settings.routing_rules)  # a bad rules file stops start-up first
        # writes (submitting groups and schedules, cancel, redrive) and, in one process,
        # the write side's consumers and background tasks; connections per process are
        # bounded so that replicas stay well inside Postgres's max_connections
        engine = make_engine(
            settings.database_url,
            pool_pre_ping=True,
            pool_size=10 if role == "all" else 3,
            max_overflow=10 if role == "all" else 5,
        )
        # the reads' own pool: autocommit (a read is one statement: no BEGIN, no ROLLBACK)
        # and no ping before each use (queries.rows tries a read again on a new connection
        # when the pooled one was dropped)
        reads = make_engine(
            settings.database_url,
            pool_size=WARM_CONNECTIONS,
            max_overflow=WARM_CONNECTIONS,
            isolation_level="AUTOCOMMIT",
        )
        m = messaging(settings)
        written = store(settings, engine, m.bus)
        depths = QueueDepths(
            settings.amqp_url,
            system.QUEUES_SHOWN,
            settings.stats_max_age_seconds / 2,
            idle_after=DEPTHS_IDLE_AFTER_SECONDS,
        )
        async with AsyncExitStack() as stack:
            stack.push_async_callback(engine.dispose)
            stack.push_async_callback(reads.dispose)
            if role == "split":
                await stack.enter_async_context(write_side(settings))
            if role != "all":
                await m.broker.connect()
                await topology.declare(m.broker, topology.status_bindings(settings.work_queue_type))
                await m.broker.start()
                stack.push_async_callback(m.broker.stop)
            else:
                await stack.enter_async_context(projecting(settings, engine, m))
            await depths.start()
            stack.push_async_callback(depths.stop)
            app.state.resources = Resources(
                settings=settings,
                engine=engine,
                reads=reads,
                units=written.units,
                relay=written.relay,
                broker=m.broker,
                bus=m.bus,
                rules=rules,
                depths=depths,
                streams=StreamSlots(settings.max_streams),
            )
            await _warm(reads, WARM_CONNECTIONS)
            yield

    return http_app.build(settings, lifespan)


async def _warm(engine: AsyncEngine, n: int) -> None:
    """Open `n` pooled connections before the first request: a new asyncpg connection costs
    several round trips (start-up, authentication, type codecs), which under load made the
    first reads of a burst the slowest. Best effort: a database still away is no reason
    not to start (reads answer 503 until it is back)."""
    try:
        async with asyncio.timeout(WARM_SECONDS), AsyncExitStack() as held:
            for _ in range(n):  # held together: each connect makes a new one
                conn = await held.enter_async_context(engine.connect())
                await conn.execute(text("SELECT 1"))
    except Exception:
        log.warning("could not open the read connections ahead; going on", exc_info=True)


async def serve_write_side(settings: StatusSettings, stop: asyncio.Event) -> None:
    """The write side as a process of its own (`python -m services.status projector`)."""
    # no ping before each checkout: every user of this pool retries a failed statement
    # (the consumers hold and hand back, the pollers try again next round), and the first
    # statement on a connection the database dropped invalidates the pool at once
    engine = make_engine(settings.database_url, pool_size=8, max_overflow=8)
    try:
        async with projecting(settings, engine, messaging(settings)):
            await stop.wait()
    finally:
        await engine.dispose()
