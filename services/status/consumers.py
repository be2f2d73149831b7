"""The status service's subscribers: lifecycle events and dead letters into Postgres.

Every delivery is settled one of three ways, by whose fault a failure is:
projected/recorded -> ack; the message's own fault (unreadable, forbidden, refused by
Postgres for its content) -> dead letter with a reason, then ack; anything wrong reaching
the database or the broker -> held (bounded), then handed back with nack + requeue.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from faststream import AckPolicy
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status import wire
from services.status.db_errors import HOLD_SECONDS, db_retrying, is_transient
from services.status.ingest import Arrival, DeadLetter, Outcome
from services.status.projector import Projector
from services.status.publishers import worker_site
from services.status.store import record_dead_letter
from shared import topology
from shared.bus import Bus
from shared.dead_letters import DeadLetterReason
from shared.errors import PermanentError, RetryableError
from shared.service import the_delivery

log = logging.getLogger("hybridq.status.consumers")


def user_id_of(msg: RabbitMessage) -> str | None:
    """The validated AMQP `user_id` of a delivery (the publisher's broker user)."""
    value = getattr(msg.raw_message, "user_id", None)
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Taken:
    """One delivery of an event, however it was consumed: its bytes, the broker user that
    published it, and how to settle it."""

    body: bytes
    user_id: str | None
    ack: Callable[[], Awaitable[None]]
    hand_back: Callable[[], Awaitable[None]]  # nack + requeue

    @classmethod
    def of(cls, msg: RabbitMessage) -> Taken:
        """A FastStream delivery (the dead-letter subscriber, FastStream's test broker)."""
        return cls(msg.body, user_id_of(msg), msg.ack, lambda: msg.nack(requeue=True))

    @classmethod
    def raw(cls, message: AbstractIncomingMessage) -> Taken:
        """An aio-pika delivery (`EventConsumer`)."""
        user = message.user_id if isinstance(message.user_id, str) else None
        return cls(message.body, user, message.ack, lambda: message.nack(requeue=True))


async def dead_letter_and_ack(
    taken: Taken, bus: Bus, reason: str, detail: str, job_id: str | None = None
) -> None:
    """Dead-letter a delivery the message's own fault stops; if the broker refuses the
    dead letter, hand the delivery back instead (transient), never drop it."""
    try:
        await bus.dead_letter(
            taken.body,
            reason=reason,
            source_queue=topology.STATUS_EVENTS.name,
            detail=detail,
            job_id=job_id,
        )
    except Exception:
        log.warning("dead letter not published; handing the event back", exc_info=True)
        await taken.hand_back()
        return
    await taken.ack()


async def handle_event(taken: Taken, bus: Bus, projector: Projector) -> None:
    """Project one event and settle its delivery (see the module docstring)."""
    try:
        event = wire.read_event(taken.body)
    except wire.Unreadable as exc:
        await dead_letter_and_ack(taken, bus, exc.reason, exc.detail, exc.job_id)
        return
    try:
        outcome = await projector.project(Arrival(event, worker_site(taken.user_id)))
    except RetryableError:
        await taken.hand_back()
        return
    except PermanentError as exc:
        await dead_letter_and_ack(
            taken, bus, DeadLetterReason.PERMANENT_ERROR, str(exc), str(event.job_id)
        )
        return
    if outcome is Outcome.FORBIDDEN:
        detail = f"{taken.user_id} may not report on job {event.job_id} of another site"
        await dead_letter_and_ack(taken, bus, DeadLetterReason.FORBIDDEN, detail, str(event.job_id))
        return
    await taken.ack()


class EventConsumer:
    """The service's consumer of `jobs.status.events`: aio-pika directly, on the broker's
    own channel (its prefetch is the projection's batch size), every delivery through
    `handle_event`.

    FastStream's per-delivery machinery (context, middlewares, logging scope) was the
    largest part of the status service's CPU once the projection batched (a sixth of it in
    the bench profile) and the events queue carries four deliveries per job; the other
    subscribers keep FastStream. aio-pika restores the consumer after a reconnection (the
    queue is re-declared passively: it is durable, declared at start-up).
    """

    def __init__(
        self,
        broker: RabbitBroker,
        bus: Bus,
        projector: Projector,
        kind: topology.WorkQueueType = topology.WorkQueueType.CLASSIC,
    ) -> None:
        self.broker = broker
        self.bus = bus
        self.projector = projector
        self.queue_name = topology.for_kind(topology.STATUS_EVENTS, kind).name
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None

    async def start(self) -> None:
        """Consume; call after the broker is connected and the topology declared."""
        channel = self.broker._channel
        if not isinstance(channel, AbstractChannel):
            raise RuntimeError("EventConsumer needs a connected broker")
        self._queue = await channel.declare_queue(self.queue_name, passive=True)
        self._tag = await self._queue.consume(self._on_message)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        await handle_event(Taken.raw(message), self.bus, self.projector)

    async def stop(self) -> None:
        """Stop taking deliveries (those in hand are settled or, unacked, handed back by the
        broker when the channel closes)."""
        queue, tag, self._tag = self._queue, self._tag, None
        if queue is not None and tag is not None and not queue.channel.is_closed:
            await queue.cancel(tag)


def subscribe(
    broker: RabbitBroker,
    bus: Bus,
    projector: Projector,
    engine: AsyncEngine,
    hold_seconds: float = HOLD_SECONDS,
    kind: topology.WorkQueueType = topology.WorkQueueType.CLASSIC,
) -> EventConsumer:
    """Subscribe the dead-letter consumer; returns the events consumer, to start once the
    broker is connected (`EventConsumer.start`)."""
    subscribe_dead_letters(broker, engine, hold_seconds, kind)
    return EventConsumer(broker, bus, projector, kind)


def subscribe_events(
    broker: RabbitBroker,
    bus: Bus,
    projector: Projector,
    kind: topology.WorkQueueType = topology.WorkQueueType.CLASSIC,
) -> None:
    """`handle_event` as a FastStream subscriber, for FastStream's in-memory test broker
    (which has no channel for `EventConsumer`): the same handling, driven in memory."""

    @broker.subscriber(
        topology.for_kind(topology.STATUS_EVENTS, kind),
        topology.EVENTS,
        ack_policy=AckPolicy.MANUAL,
        decoder=the_delivery,
        title="status.events",
    )
    async def on_event(msg: RabbitMessage) -> None:
        await handle_event(Taken.of(msg), bus, projector)


def subscribe_dead_letters(
    broker: RabbitBroker,
    engine: AsyncEngine,
    hold_seconds: float = HOLD_SECONDS,
    kind: topology.WorkQueueType = topology.WorkQueueType.CLASSIC,
) -> None:
    @broker.subscriber(
        topology.for_kind(topology.STATUS_DEAD_LETTERS, kind),
        topology.DEAD_LETTER_EXCHANGE,
        ack_policy=AckPolicy.MANUAL,
        decoder=the_delivery,
        title="status.dead_letters",
    )
    async def on_dead_letter(msg: RabbitMessage) -> None:
        headers: dict[str, Any] = dict(msg.headers or {})
        try:
            letter = wire.read_dead_letter(msg.body, headers, msg.message_id, user_id_of(msg))
        except Exception as exc:  # a header shaped like nothing we know: keep the bytes
            log.warning("dead letter unreadable; storing it raw", exc_info=True)
            letter = wire.fallback_dead_letter(msg.body, msg.message_id, exc)
        if await _record(engine, letter, hold_seconds, msg):
            await msg.ack()


async def _record(
    engine: AsyncEngine, letter: DeadLetter, hold_seconds: float, msg: RabbitMessage
) -> bool:
    """Store a dead letter; False (and handed back) when the database stayed away."""
    # if Postgres refuses the content itself, the raw bytes are stored (base64) instead
    raw = wire.fallback_dead_letter(msg.body, letter.id, ValueError("refused by the store"))
    for candidate in (letter, raw):
        try:
            async for attempt in db_retrying(hold_seconds):
                with attempt:
                    await record_dead_letter(engine, candidate)
            return True
        except Exception as exc:
            if is_transient(exc):
                log.warning("database away past the hold; handing the dead letter back")
                await msg.nack(requeue=True)
                return False
            log.warning("dead letter refused by the store for its content", exc_info=True)
    log.error("dead letter could not be stored in any form; dropped: %s", letter.id)
    return True
