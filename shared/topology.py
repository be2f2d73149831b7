"""Every exchange, queue, binding and argument hybridq uses, declared in one place.

Public names (contract section 2) and internal ones (router intake, delay tiers, status
feeds) live here; handlers refer to these objects, never to string literals.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aiormq.exceptions import ChannelAccessRefused
from faststream.rabbit import ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue

from shared.contracts.jobs import Site

# -- exchanges --------------------------------------------------------------------------
INTAKE = RabbitExchange("jobs.intake", type=ExchangeType.TOPIC, durable=True)
EVENTS = RabbitExchange("jobs.events", type=ExchangeType.TOPIC, durable=True)
DISPATCH = RabbitExchange("jobs.dispatch", type=ExchangeType.TOPIC, durable=True)
"""Topic, not direct, so that topic permissions can limit each worker to its own site's key."""
DELAY = RabbitExchange("jobs.delay", type=ExchangeType.DIRECT, durable=True)
DEAD_LETTER_EXCHANGE = RabbitExchange("jobs.dlx", type=ExchangeType.FANOUT, durable=True)
"""Dead-letter exchange; it feeds the `jobs.dead-letter` queue (operators) and the status
service's copy. Named apart from the queue so that permission patterns tell them apart."""

SUBMITTED_KEY = "job.submitted"
DUE_KEY = "due"

MAX_PRIORITY = 9
INTAKE_DELIVERY_LIMIT = 5
_DEAD_LETTERING = {"x-dead-letter-exchange": DEAD_LETTER_EXCHANGE.name}


def _queue(name: str, kind: QueueType, routing_key: str = "", **arguments: Any) -> RabbitQueue:
    # FastStream's overloads want a TypedDict per queue type; these arguments are built
    # from keyword arguments, so the general (implementation) signature is the right one.
    queue: RabbitQueue = RabbitQueue(  # type: ignore[call-overload]
        name, queue_type=kind, durable=True, routing_key=routing_key, arguments=arguments
    )
    return queue


def _classic(name: str, routing_key: str = "", **arguments: Any) -> RabbitQueue:
    return _queue(name, QueueType.CLASSIC, routing_key, **arguments)


def _quorum(name: str, routing_key: str = "", **arguments: Any) -> RabbitQueue:
    return _queue(name, QueueType.QUORUM, routing_key, **arguments)


# -- public queues ----------------------------------------------------------------------
class WorkQueueType(StrEnum):
    """How `jobs.public` / `jobs.private` are declared (setting WORK_QUEUE_TYPE).

    classic: v1's declarations; the work queues are priority queues (`x-max-priority` 9).
    quorum: every queue that holds a job or an event is a quorum queue (`for_kind`),
    replicated across a cluster; RabbitMQ 4.x orders quorum queues by two priority levels
    (5-9 before 0-4), 3.10-3.13 ignore priorities there.
    """

    CLASSIC = "classic"
    QUORUM = "quorum"


WORK_DELIVERY_LIMIT = 10


def work_queue_name(site: Site) -> str:
    return f"jobs.{site.value}"


def work_queue(site: Site, kind: WorkQueueType = WorkQueueType.CLASSIC) -> RabbitQueue:
    if kind is WorkQueueType.QUORUM:
        return for_kind(work_queue(site), kind)
    return _classic(
        work_queue_name(site),
        routing_key=site.value,
        **{"x-max-priority": MAX_PRIORITY, **_DEAD_LETTERING},
    )


DEAD_LETTER_QUEUE = _classic("jobs.dead-letter")

# -- internal queues --------------------------------------------------------------------
ROUTER_INTAKE = _quorum(
    "jobs.router.intake",
    routing_key=SUBMITTED_KEY,
    **{
        "x-delivery-limit": INTAKE_DELIVERY_LIMIT,
        **_DEAD_LETTERING,
    },
)
ROUTER_DUE = _quorum(
    "jobs.router.due",
    routing_key=DUE_KEY,
    **{"x-delivery-limit": INTAKE_DELIVERY_LIMIT, **_DEAD_LETTERING},
)
EVENT_BATCHES_KEY = "events.#"
"""Every event batch, whatever its source (`events.router`, `events.status`,
`events.<site>`): contract v1.2 §3.2."""
V11_EVENTS_KEY = "job.#"
"""A v1.1 single event (`job.<event>`), still taken during a rolling upgrade."""
STATUS_EVENTS = _classic("jobs.status.events", routing_key=EVENT_BATCHES_KEY, **_DEAD_LETTERING)
STATUS_EVENTS_V11 = _classic("jobs.status.events", routing_key=V11_EVENTS_KEY, **_DEAD_LETTERING)
STATUS_DEAD_LETTERS = _classic("jobs.status.dead-letters")
WORKER_KEYS = "worker.#"
STATUS_WORKERS = _classic("jobs.status.workers", routing_key=WORKER_KEYS, **_DEAD_LETTERING)
"""Worker heartbeats and attempt leases, for the status service (`GET /workers`, leases)."""


# -- cancellations (a stream every router and worker replays at start) ------------------
CANCELLED_KEY = "job.cancelled"
"""A v1.1 status service's single JobCancelled (rolling upgrade)."""
STATUS_EVENTS_KEY = "events.status"
"""The status service's event batches: its cancellations travel in them (contract §3.2)."""
CANCELLATIONS_SYNC_KEY = "cancellations.sync"
LINK_SYNC_KEY = "cancellations.link-sync"
"""A worker's barrier marker behind the hybrid link: routed only where `hybridq link setup`
bound it (public broker -> private broker -> back in the cancellations' own FIFO); on a
broker without the link it is unroutable (docs/hybrid-link.md)."""
"""Sync markers: a process reads its own marker back to know its replay reached the
present. Not a `job.*` key, so no event consumer sees it, and only `job.cancelled` cancels."""
CANCELLATIONS_MAX_AGE = "30D"
"""Covers the longest wait of a queued job (7-day delays, retries, backlog) with margin;
the same as the default RETENTION_DAYS, after which the job itself is forgotten."""
_STREAM = {"x-max-age": CANCELLATIONS_MAX_AGE, "x-stream-max-segment-size-bytes": 8_000_000}
CANCELLATIONS = _queue("jobs.cancellations", QueueType.STREAM, STATUS_EVENTS_KEY, **_STREAM)
CANCELLATIONS_V11 = _queue(CANCELLATIONS.name, QueueType.STREAM, CANCELLED_KEY, **_STREAM)
CANCELLATIONS_SYNC = _queue(CANCELLATIONS.name, QueueType.STREAM, CANCELLATIONS_SYNC_KEY, **_STREAM)


# -- delay tiers ------------------------------------------------------------------------
DELAY_BASE_MS = 100
DELAY_TIER_COUNT = 24  # 0.1 s ... 0.1 s * 2**23 (9.7 days): covers the 7-day maximum


@dataclass(frozen=True)
class DelayTier:
    ttl_ms: int

    @property
    def name(self) -> str:
        return f"jobs.delay.{self.ttl_ms}ms"

    @property
    def queue(self) -> RabbitQueue:
        """A quorum queue whatever WORK_QUEUE_TYPE says: an expired message moves on to
        `jobs.router.due` with *at-least-once* dead-lettering (only quorum queues offer it;
        it needs `x-overflow: reject-publish`), so a message that expires while the broker
        restarts -- before `jobs.router.due` has a leader again -- waits in its tier
        instead of being dropped (a classic queue's dead-lettering is at-most-once)."""
        return _quorum(
            self.name,
            routing_key=self.name,
            **{
                "x-message-ttl": self.ttl_ms,
                "x-dead-letter-exchange": DELAY.name,
                "x-dead-letter-routing-key": DUE_KEY,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
                "x-delivery-limit": INTAKE_DELIVERY_LIMIT,
            },
        )


DELAY_TIERS: tuple[DelayTier, ...] = tuple(
    DelayTier(DELAY_BASE_MS * 2**k) for k in range(DELAY_TIER_COUNT)
)


def tier_for(remaining_seconds: float) -> DelayTier:
    """The longest tier that does not overshoot `remaining_seconds` (the shortest if all do)."""
    remaining_ms = remaining_seconds * 1000
    fitting = [t for t in DELAY_TIERS if t.ttl_ms <= remaining_ms]
    return fitting[-1] if fitting else DELAY_TIERS[0]


# -- what each service declares ---------------------------------------------------------
Binding = tuple[RabbitQueue, RabbitExchange]

BASE_EXCHANGES = (INTAKE, EVENTS, DISPATCH, DELAY, DEAD_LETTER_EXCHANGE)


def for_kind(queue: RabbitQueue, kind: WorkQueueType) -> RabbitQueue:
    """`queue` as declared under WORK_QUEUE_TYPE=`kind`.

    classic: unchanged (v1's declarations). quorum: every durable queue that holds a job or
    an event becomes a quorum queue (Raft-replicated: a cluster that loses a node loses no
    job) with an explicit delivery limit; where it dead-letters, it does so at-least-once
    (`x-dead-letter-strategy`, which needs `x-overflow: reject-publish`), so a message is
    never lost between two queues on a node failure. Priorities are dropped: quorum queues
    have none on RabbitMQ 3.10-3.13 (docs/cluster.md). Streams and exclusive queues are
    left alone.
    """
    arguments = dict(queue.arguments or {})
    if kind is WorkQueueType.CLASSIC or not queue.durable or queue.exclusive:
        return queue
    if arguments.get("x-queue-type") == QueueType.STREAM.value:
        return queue
    arguments.pop("x-queue-type", None)
    arguments.pop("x-max-priority", None)
    arguments.setdefault("x-delivery-limit", QUORUM_DELIVERY_LIMITS.get(queue.name, 100))
    if "x-dead-letter-exchange" in arguments:
        arguments["x-dead-letter-strategy"] = "at-least-once"
        arguments["x-overflow"] = "reject-publish"
    return _quorum(queue.name, routing_key=queue.routing_key, **arguments)


QUORUM_DELIVERY_LIMITS = {
    "jobs.public": WORK_DELIVERY_LIMIT,
    "jobs.private": WORK_DELIVERY_LIMIT,
    "jobs.router.intake": INTAKE_DELIVERY_LIMIT,
    "jobs.router.due": INTAKE_DELIVERY_LIMIT,
}
"""Delivery limits of the quorum queues; the others (status feeds, dead letters, delay tiers)
get 100: a status service that hands events back during a long database outage (each hold
is minutes) must not dead-letter them after a few tries, while a poison message that kills
the consumer process still ends in `jobs.dead-letter` instead of looping forever."""


def _kinded(bindings: Iterable[Binding], kind: WorkQueueType) -> tuple[Binding, ...]:
    return tuple((for_kind(queue, kind), exchange) for queue, exchange in bindings)


def base_bindings(kind: WorkQueueType = WorkQueueType.CLASSIC) -> tuple[Binding, ...]:
    """Queues every publisher relies on: without them a message published before its
    consumer starts would be unroutable. Every service declares them, so start order
    does not matter and a fresh vhost works."""
    return _kinded(
        (
            *((work_queue(site, kind), DISPATCH) for site in Site),
            *((t.queue, DELAY) for t in DELAY_TIERS),
            (ROUTER_DUE, DELAY),
            (DEAD_LETTER_QUEUE, DEAD_LETTER_EXCHANGE),
            (STATUS_WORKERS, EVENTS),
            (CANCELLATIONS, EVENTS),
            (CANCELLATIONS_V11, EVENTS),
            (CANCELLATIONS_SYNC, EVENTS),
        ),
        kind,
    )


def router_bindings(kind: WorkQueueType = WorkQueueType.CLASSIC) -> tuple[Binding, ...]:
    """The router's queues, plus the status feed its events go to: publishes are
    mandatory, so a router started before the status service needs that queue to exist
    (else every event would be refused and intake handed back)."""
    return (
        *base_bindings(kind),
        *_kinded(
            [(ROUTER_INTAKE, INTAKE), (STATUS_EVENTS, EVENTS), (STATUS_EVENTS_V11, EVENTS)], kind
        ),
    )


def worker_bindings(kind: WorkQueueType = WorkQueueType.CLASSIC) -> tuple[Binding, ...]:
    return base_bindings(kind)


def status_bindings(kind: WorkQueueType = WorkQueueType.CLASSIC) -> tuple[Binding, ...]:
    return (
        *base_bindings(kind),
        *_kinded(
            [
                (ROUTER_INTAKE, INTAKE),
                (STATUS_EVENTS, EVENTS),
                (STATUS_EVENTS_V11, EVENTS),
                (STATUS_DEAD_LETTERS, DEAD_LETTER_EXCHANGE),
            ],
            kind,
        ),
    )


async def declare(
    broker: RabbitBroker,
    bindings: Sequence[Binding],
    exchanges: Iterable[RabbitExchange] = BASE_EXCHANGES,
) -> None:
    """Declare exchanges, queues and bindings idempotently.

    What the service's broker user may not configure (a worker's user owns only its work
    queue; see devtools/definitions.py) is checked to exist instead (a passive declare
    needs no permission), and only queues the service declared itself are bound by it:
    under least-privilege users the definitions file has created the rest. Runs on
    channels of its own, since a refusal closes the channel it happens on."""
    connection = await broker.connect()
    channel = await connection.channel()
    used = [channel]
    try:
        for ex in exchanges:
            try:
                await channel.declare_exchange(ex.name, ex.type.value, durable=ex.durable)
            except ChannelAccessRefused:
                channel = await connection.channel()  # the refusal closed the old one
                used.append(channel)
                await channel.declare_exchange(ex.name, passive=True)
        for queue, exchange in bindings:
            try:
                declared = await channel.declare_queue(
                    queue.name, durable=queue.durable, arguments=queue.arguments
                )
            except ChannelAccessRefused:
                channel = await connection.channel()
                used.append(channel)
                await channel.declare_queue(queue.name, passive=True)
                continue  # not ours: its owner binds it
            await declared.bind(exchange.name, routing_key=queue.routing())
    finally:
        for each in used:  # a refused robust channel reopens itself: close it too
            await each.close()


def passive(exchange: RabbitExchange) -> RabbitExchange:
    """`exchange` for a subscriber whose user may not configure it: only checked."""
    return RabbitExchange(
        exchange.name, type=exchange.type, durable=exchange.durable, declare=False
    )


def all_queues(kind: WorkQueueType = WorkQueueType.CLASSIC) -> list[RabbitQueue]:
    """Every durable queue of the topology (for definitions and docs)."""
    seen: dict[str, RabbitQueue] = {}
    for queue, _ in status_bindings(kind):
        seen.setdefault(queue.name, queue)
    return list(seen.values())
