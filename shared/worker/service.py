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
from shared.cancellations import Cancellations, listen
from shared.contracts.jobs import Site
from shared.health import broker_check
from shared.metrics import serve_metrics
from shared.service import raw_body, settle, stop_deliveries
from shared.settings import WorkerSettings
from shared.worker.builtins import register_builtins
from shared.worker.executors import Executor, InProcessExecutor
from shared.worker.handlers import Registry
from shared.worker.runner import Runner


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Worker:
    app: FastStream
    broker: RabbitBroker
    runner: Runner


def make_executor(settings: WorkerSettings, registry: Registry) -> Executor:
    if settings.executor == "http":
        from shared.worker.http_executor import HttpExecutor

        return HttpExecutor.from_settings(settings, registry)
    return InProcessExecutor(registry)


def build(
    site: Site,
    settings: WorkerSettings | None = None,
    *,
    executor: Executor | None = None,
    clock: Callable[[], datetime] = _now,
) -> Worker:
    settings = settings or WorkerSettings()
    broker = make_broker(
        settings.amqp_url, settings.concurrency, graceful_timeout=settings.drain_seconds + 3
    )
    cancellations = Cancellations()
    queue = topology.work_queue(site, settings.work_queue_type)
    runner = Runner(
        site=site,
        bus=Bus(broker),
        executor=executor or make_executor(settings, register_builtins(Registry())),
        cancellations=cancellations,
        clock=clock,
        worker_name=settings.worker_name or f"{site.value}@{socket.gethostname()}",
        retry_base_seconds=settings.retry_base_seconds,
        retry_max_seconds=settings.retry_max_seconds,
    )

    async def handle(msg: RabbitMessage) -> None:
        redelivered = bool(getattr(msg.raw_message, "redelivered", False))

        async def run(body: bytes, source: str) -> str:
            return await runner.handle(body, source, redelivered=redelivered)

        await settle(msg, queue.name, run)

    subscriber = broker.subscriber(
        queue,
        topology.DISPATCH,
        ack_policy=AckPolicy.MANUAL,
        decoder=raw_body,
        title=f"{site.value}_worker",
    )
    subscriber(handle)
    listen(broker, cancellations, f"{site.value}-worker")
    app = FastStream(broker, logger=logging.getLogger("hybridq.app"))
    health.attach(app, {"broker": broker_check(broker)}, settings.health_host, settings.health_port)

    @app.on_startup
    async def declare() -> None:
        await broker.connect()
        await topology.declare(broker, topology.worker_bindings(settings.work_queue_type))
        if settings.metrics_port:
            serve_metrics(settings.metrics_port)

    @app.on_shutdown
    async def drain() -> None:
        # No new deliveries; then subscriber.stop() waits for the handlers in flight while
        # runner.drain() hands back what still runs after DRAIN_SECONDS.
        await stop_deliveries(subscriber)
        await asyncio.gather(subscriber.stop(), runner.drain(settings.drain_seconds))

    return Worker(app, broker, runner)
