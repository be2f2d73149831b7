"""The router's composition root: settings -> broker -> subscribers -> app."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from faststream import AckPolicy, FastStream
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from shared import health, topology
from shared.bus import Bus, make_broker
from shared.cancellations import CancellationFeed, Cancellations
from shared.contracts.batches import ROUTER_SOURCE
from shared.contracts.jobs import Site
from shared.health import broker_check
from shared.identity import WorkerUsers
from shared.metrics import serve_metrics
from shared.placement.rules import Rules, load_rules
from shared.queue_depth import QueueDepths
from shared.service import settle, stop_deliveries, the_delivery
from shared.settings import RouterSettings

from .dedup import Ledger
from .due import DueJobs
from .intake import Intake
from .ledger_store import LedgerStore, PostgresLedgerStore

PRIVATE_QUEUE = topology.work_queue_name(Site.PRIVATE)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Router:
    app: FastStream
    broker: RabbitBroker
    intake: Intake
    due: DueJobs
    cancellations: Cancellations
    ledger: Ledger


def build(
    settings: RouterSettings | None = None,
    *,
    rules: Rules | None = None,
    private_backlog: Callable[[], int] | None = None,
    clock: Callable[[], datetime] = _now,
    ledger_store: LedgerStore | None = None,
) -> Router:
    settings = settings or RouterSettings()
    rules = rules or load_rules(settings.routing_rules)
    broker = make_broker(settings.amqp_url, settings.prefetch)
    bus = Bus(broker, source=ROUTER_SOURCE)
    depths = QueueDepths(settings.amqp_url, [PRIVATE_QUEUE], settings.backlog_max_age_seconds)
    ledger = Ledger(
        ledger_store or PostgresLedgerStore(settings.database_url),
        lease_seconds=settings.claim_lease_seconds,
        hold_seconds=settings.db_hold_seconds,
        retention_days=settings.retention_days,
    )
    cancellations = Cancellations()
    backlog = private_backlog or (lambda: depths.ready(PRIVATE_QUEUE))
    intake = Intake(bus, rules, backlog, ledger, clock)
    due = DueJobs(bus, cancellations, ledger, clock, WorkerUsers.from_settings(settings))
    feed = CancellationFeed(broker, bus, cancellations, WorkerUsers.from_settings(settings))

    kind = settings.work_queue_type
    intake_subscriber = broker.subscriber(
        topology.for_kind(topology.ROUTER_INTAKE, kind),
        topology.INTAKE,
        ack_policy=AckPolicy.MANUAL,
        decoder=the_delivery,
        title="router.intake",
    )
    due_subscriber = broker.subscriber(
        topology.for_kind(topology.ROUTER_DUE, kind),
        topology.DELAY,
        ack_policy=AckPolicy.MANUAL,
        decoder=the_delivery,
        title="router.due",
    )

    @intake_subscriber
    async def on_submitted(msg: RabbitMessage) -> None:
        redelivered = _redelivered(msg)

        async def handle(body: bytes, queue: str) -> str:
            return await intake.handle(body, queue, redelivered=redelivered)

        await settle(msg, topology.ROUTER_INTAKE.name, handle)

    @due_subscriber
    async def on_due(msg: RabbitMessage) -> None:
        publisher = getattr(msg.raw_message, "user_id", None)
        redelivered = _redelivered(msg)

        async def handle(body: bytes, queue: str) -> str:
            return await due.handle(body, queue, publisher, redelivered=redelivered)

        await settle(msg, topology.ROUTER_DUE.name, handle)

    app = FastStream(broker, logger=logging.getLogger("hybridq.app"))
    health.attach(
        app,
        {"broker": broker_check(broker), "database": _async(ledger.ready)},
        settings.health_host,
        settings.health_port,
    )

    @app.on_startup
    async def declare() -> None:
        ledger.start()
        await broker.connect()
        await topology.declare(broker, topology.router_bindings(settings.work_queue_type))
        # consumers start after this hook: nothing is dispatched before the cancellations
        # replay has reached the present
        await feed.start()
        await cancellations.caught_up()
        if private_backlog is None:
            await depths.start()
        if settings.metrics_port:
            serve_metrics(settings.metrics_port)

    @app.on_shutdown
    async def stop_taking() -> None:
        await stop_deliveries(intake_subscriber)
        await stop_deliveries(due_subscriber)

    @app.after_shutdown
    async def close() -> None:
        await feed.stop()
        await depths.stop()
        await ledger.stop()

    return Router(app, broker, intake, due, cancellations, ledger)


def _redelivered(msg: RabbitMessage) -> bool:
    return bool(getattr(msg.raw_message, "redelivered", False))


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        return check()

    return run
