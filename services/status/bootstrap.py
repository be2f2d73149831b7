"""The status service's composition root: settings -> engines, broker -> the role's parts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Literal

from fastapi import FastAPI
from faststream.rabbit import RabbitBroker
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status import leases, outbox, redrives, workers
from services.status.background import start_background, stop_background
from services.status.consumers import subscribe
from services.status.entrypoints.http import app as http_app
from services.status.entrypoints.http import system
from services.status.entrypoints.http.deps import Resources
from services.status.entrypoints.http.streams import StreamSlots
from services.status.projector import Projector
from services.status.schedules.firer import Firer
from services.status.write_side import write_side
from shared import topology
from shared.bus import Bus, make_broker
from shared.database import make_engine
from shared.identity import WorkerUsers
from shared.placement.rules import load_rules
from shared.queue_depth import QueueDepths
from shared.settings import StatusSettings
from shared.tasks import cancel_and_wait

log = logging.getLogger("hybridq.status.http")
RELAY_EVERY_SECONDS = 5.0
WARM_CONNECTIONS = 6
WARM_SECONDS = 5.0
DEPTHS_IDLE_AFTER_SECONDS = 30.0
"""/stats's queue depths are kept fresh while it is read, and not read from the broker
after this long without a /stats request (shared/queue_depth.py)."""


Role = Literal["all", "api", "split"]
"""`all`: the HTTP API and the write side (`projecting`) in one process (the in-memory
tests); `api`: the HTTP API only, the write side running elsewhere; `split` (what
`python -m services.status` runs): the HTTP API here, the write side in a child process
(`write_side.py`)."""


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
        broker = make_broker(settings.amqp_url, settings.batch_size)
        bus = Bus(broker)
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
                await broker.connect()
                await topology.declare(broker, topology.status_bindings(settings.work_queue_type))
                await broker.start()
                stack.push_async_callback(broker.stop)
            else:
                await stack.enter_async_context(projecting(settings, engine, broker, bus))
            await depths.start()
            stack.push_async_callback(depths.stop)
            app.state.resources = Resources(
                settings,
                engine,
                reads,
                broker,
                bus,
                rules,
                depths,
                StreamSlots(settings.max_streams),
            )
            await _warm(reads, WARM_CONNECTIONS)
            yield

    return http_app.build(settings, lifespan)


@asynccontextmanager
async def projecting(
    settings: StatusSettings, engine: AsyncEngine, broker: RabbitBroker, bus: Bus
) -> AsyncIterator[None]:
    """The write side: the event consumer, the worker registry and the background tasks,
    on `broker` (started here, stopped on the way out after the tasks that publish)."""
    # the projection's own pool, without the pre-ping round trip per transaction: a
    # connection lost with the database fails its batch, which is held and retried
    # (db_errors.db_retrying) on a new connection
    projection_engine = make_engine(settings.database_url, pool_size=2, max_overflow=2)
    projector = Projector(
        projection_engine,
        settings.batch_size,
        settings.batch_wait_seconds,
        hold_seconds=settings.db_hold_seconds,
        relay=lambda: outbox.relay(engine, bus),
    )
    kind = settings.work_queue_type
    events = subscribe(
        broker,
        bus,
        projector,
        engine,
        settings.db_hold_seconds,
        kind,
        WorkerUsers.from_settings(settings),
    )
    workers.subscribe(broker, bus, engine, kind)
    await projector.start()
    await broker.connect()
    await topology.declare(broker, topology.status_bindings(settings.work_queue_type))
    await broker.start()
    await events.start()
    background = start_background(engine, bus, settings)
    firer = Firer(engine, bus, settings.schedule_poll_seconds)
    firing = asyncio.create_task(firer.run(), name="schedule-firer")
    lease_sweeper = asyncio.create_task(leases.sweep_forever(engine, bus), name="leases")
    relay = asyncio.create_task(_relay_redrives(engine, bus), name="redrive-relay")
    try:
        yield
    finally:
        await stop_background(background)
        await cancel_and_wait([firing, lease_sweeper, relay])  # no publish after the broker stops
        await events.stop()
        await broker.stop()
        await projector.stop()
        await projection_engine.dispose()


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


async def _relay_redrives(engine: AsyncEngine, bus: Bus) -> None:
    """Publish claimed redrives whose publish failed (or whose process died) earlier."""
    while True:
        await asyncio.sleep(RELAY_EVERY_SECONDS)
        try:
            await redrives.relay(engine, bus)
        except Exception:  # database away: next round
            log.warning("redrive relay failed; retrying", exc_info=True)
