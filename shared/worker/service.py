"""A worker's composition root: one implementation, configured by site."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from faststream import AckPolicy, FastStream
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from shared import health, topology
from shared.bus import Bus, make_broker
from shared.cancellations import CancellationFeed, Cancellations
from shared.contracts.jobs import Site
from shared.health import broker_check
from shared.identity import WorkerUsers
from shared.metrics import serve_metrics
from shared.service import delivery_alive, settle, stop_deliveries, the_delivery
from shared.settings import WorkerSettings
from shared.worker.executors import Executor, LocalExecutor
from shared.worker.handlers import Registry
from shared.worker.heartbeat import Heartbeat
from shared.worker.leases import Leasing
from shared.worker.loading import load_handlers, pool_modules
from shared.worker.pool import ProcessPool
from shared.worker.runner import Runner


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Worker:
    app: FastStream
    broker: RabbitBroker
    runner: Runner
    pool: ProcessPool
    heartbeat: Heartbeat


def make_executor(settings: WorkerSettings, registry: Registry, pool: ProcessPool) -> Executor:
    if settings.executor == "http":
        from shared.worker.http_executor import HttpExecutor

        return HttpExecutor.from_settings(settings, registry)
    return LocalExecutor(registry, pool)


def build(
    site: Site,
    settings: WorkerSettings | None = None,
    *,
    executor: Executor | None = None,
    registry: Registry | None = None,
    clock: Callable[[], datetime] = _now,
) -> Worker:
    """The worker of `site`. Tests may pass their own executor or registry (instead of
    the module-level registry filled from HYBRIDQ_HANDLERS) and clock."""
    settings = settings or WorkerSettings()
    if registry is None:
        registry = load_handlers(settings.handler_modules)  # HandlerModuleError: no start
    pool = ProcessPool(settings.concurrency, pool_modules(settings.handler_modules))
    broker = make_broker(
        settings.amqp_url, settings.concurrency, graceful_timeout=settings.drain_seconds + 3
    )
    cancellations = Cancellations()
    queue = topology.work_queue(site, settings.work_queue_type)
    runner = Runner(
        site=site,
        bus=Bus(broker, source=site.value),
        executor=executor or make_executor(settings, registry, pool),
        cancellations=cancellations,
        clock=clock,
        worker_name=settings.worker_name or f"{site.value}@{socket.gethostname()}",
        retry_base_seconds=settings.retry_base_seconds,
        retry_max_seconds=settings.retry_max_seconds,
        leasing=Leasing(settings.lease_after_seconds, settings.lease_seconds),
        concurrency=settings.concurrency,
    )
    heartbeat = Heartbeat(
        runner.bus,
        runner,
        sorted(registry.job_types()),
        settings.concurrency,
        settings.heartbeat_seconds,
    )

    async def handle(msg: RabbitMessage) -> None:
        redelivered = bool(getattr(msg.raw_message, "redelivered", False))

        async def run(body: bytes, source: str) -> str:
            # settle_early: a long attempt acks once it holds a lease (then `settle`'s own
            # ack or nack is a no-op: FastStream settles a message once)
            return await runner.handle(
                body,
                source,
                redelivered=redelivered,
                settle_early=msg.ack,
                alive=lambda: delivery_alive(msg),
            )

        await settle(msg, queue.name, run)

    subscriber = broker.subscriber(
        queue,
        topology.passive(topology.DISPATCH),  # a worker's user configures its queue only
        ack_policy=AckPolicy.MANUAL,
        decoder=the_delivery,
        title=f"{site.value}_worker",
    )
    subscriber(handle)
    feed = CancellationFeed(
        broker,
        runner.bus,
        cancellations,
        WorkerUsers.from_settings(settings),
        link_barrier=site is Site.PUBLIC,  # behind the hybrid link (docs/hybrid-link.md)
    )
    app = FastStream(broker, logger=logging.getLogger("hybridq.app"))
    health.attach(app, {"broker": broker_check(broker)}, settings.health_host, settings.health_port)

    beating: list[asyncio.Task[None]] = []

    @app.on_startup
    async def declare() -> None:
        if isinstance(runner.executor, LocalExecutor):
            await pool.start()  # warm before the first job (a remote executor needs none)
        await broker.connect()
        await topology.declare(broker, topology.worker_bindings(settings.work_queue_type))
        # the work queue's consumer starts after this hook: no job is taken before the
        # cancellations replay has reached the present
        await feed.start()
        await cancellations.caught_up()
        if settings.metrics_port:
            serve_metrics(settings.metrics_port)

    @app.after_startup
    async def announce() -> None:
        beating.append(asyncio.create_task(heartbeat.run(), name="heartbeat"))

    @app.on_shutdown
    async def drain() -> None:
        # No new deliveries; then subscriber.stop() waits for the handlers in flight while
        # runner.drain() hands back what still runs after DRAIN_SECONDS (a handler in a
        # pool process is killed), then the pool's idle processes go too.
        await stop_deliveries(subscriber)
        cancellations.release_barriers()  # jobs held for a cut link go back to the queue
        await asyncio.gather(subscriber.stop(), runner.drain(settings.drain_seconds))
        for task in beating:
            task.cancel()
        await pool.close()
        await feed.stop()

    return Worker(app, broker, runner, pool, heartbeat)
