"""The status service's subscribers: lifecycle events and dead letters into Postgres.

Every delivery is settled one of three ways, by whose fault a failure is:
projected/recorded -> ack; the message's own fault (unreadable, forbidden, refused by
Postgres for its content) -> dead letter with a reason, then ack; anything wrong reaching
the database or the broker -> held (bounded), then handed back with nack + requeue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import ChannelInvalidStateError
from faststream import AckPolicy
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status import wire
from services.status.db_errors import HOLD_SECONDS, db_retrying, is_transient
from services.status.ingest import Arrival, DeadLetter, Outcome
from services.status.projector import Projector
from services.status.store import record_dead_letter
from shared import topology
from shared.bus import Bus
from shared.contracts import batches
from shared.dead_letters import DeadLetterReason
from shared.errors import PermanentError
from shared.identity import WorkerUsers
from shared.service import the_delivery

log = logging.getLogger("hybridq.status.consumers")
DEFAULT_WORKERS = WorkerUsers()


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
    def raw(cls, message: AbstractIncomingMessage, acks: Acks) -> Taken:
        """An aio-pika delivery (`EventConsumer`), acknowledged through `acks`."""
        user = message.user_id if isinstance(message.user_id, str) else None
        return cls(message.body, user, lambda: acks.ack(message), lambda: acks.hand_back(message))


class Acks:
    """The acknowledgements of one consumer's channel, sent several at a time.

    The projection settles a whole batch of deliveries at once; acking each on its own
    was one frame per event in and out of this process and one more for the broker to
    read (four per job). A delivery that is settled is marked; at the end of that
    event-loop turn the longest run of settled deliveries from the oldest unsettled one
    goes as one `basic.ack` with `multiple`, and settled deliveries behind an unsettled one
    (still held, say) are acked one by one, so no ack waits for another delivery.

    A hand back (nack + requeue) is sent at once, for that delivery alone, and the
    delivery counts as unsettled until its frame is written: a multiple ack queued in the
    meantime stops short of it (it would otherwise take the event off the queue unseen).
    Deliveries of an earlier channel (before a reconnection) are forgotten, and so are
    its acks not yet sent: the broker has put those deliveries back.
    """

    SEND_SECONDS = 5.0  # one ack frame's bound (a connection going away can stall it)

    def __init__(self) -> None:
        self._channel: object | None = None
        self._open: dict[int, AbstractIncomingMessage] = {}  # by delivery tag, in order
        self._settled: set[int] = set()
        self._flush: asyncio.Task[None] | None = None
        self._due = False

    def received(self, message: AbstractIncomingMessage) -> bool:
        """Account for a new delivery; False if its channel is already closed."""
        try:
            channel = message.channel
        except ChannelInvalidStateError:  # closed since: the broker redelivers it
            return False
        if channel is not self._channel:
            self._channel = channel
            self._open.clear()
            self._settled.clear()
            self._flush = None  # the old channel's acks are moot; never wait behind them
        if message.delivery_tag is not None:
            self._open[message.delivery_tag] = message
        return True

    def _holds(self, message: AbstractIncomingMessage) -> bool:
        tag = message.delivery_tag
        return tag is not None and self._open.get(tag) is message

    async def ack(self, message: AbstractIncomingMessage) -> None:
        if not self._holds(message):
            await self._one(message.ack())  # not one this account holds (an earlier channel's)
            return
        assert message.delivery_tag is not None
        self._settled.add(message.delivery_tag)
        self._soon()

    async def hand_back(self, message: AbstractIncomingMessage) -> None:
        held = self._holds(message)
        await self._one(message.nack(requeue=True))  # written before the tag is let go
        if held and message.delivery_tag is not None:
            self._open.pop(message.delivery_tag, None)
            if self._settled:
                self._soon()  # a run of settled deliveries may have waited behind it

    def _soon(self) -> None:
        if not self._due:
            self._due = True
            asyncio.get_running_loop().call_soon(self._send_soon)

    def _send_soon(self) -> None:
        self._due = False
        previous = self._flush
        self._flush = asyncio.create_task(self._send(previous), name="event acks")

    def _take(self) -> list[tuple[AbstractIncomingMessage, bool]]:
        """What to send now: (delivery, multiple), in delivery order."""
        run: AbstractIncomingMessage | None = None
        for tag, message in self._open.items():
            if tag not in self._settled:
                break
            run = message
        out: list[tuple[AbstractIncomingMessage, bool]] = []
        if run is not None and run.delivery_tag is not None:
            for tag in [t for t in self._open if t <= run.delivery_tag]:
                del self._open[tag]
                self._settled.discard(tag)
            out.append((run, True))
        for tag in sorted(self._settled):  # behind a delivery still unsettled
            out.append((self._open.pop(tag), False))
        self._settled.clear()
        return out

    async def _send(self, previous: asyncio.Task[None] | None) -> None:
        if previous is not None and not previous.done():  # in order after the turn before
            await asyncio.wait([previous])
        for message, multiple in self._take():
            if not await self._one(message.ack(multiple=multiple)):
                return

    async def _one(self, frame: Awaitable[None]) -> bool:
        try:
            async with asyncio.timeout(self.SEND_SECONDS):
                await frame
        except Exception:  # channel gone: the broker redelivers; projection is idempotent
            log.warning("event ack not sent; the broker will redeliver", exc_info=True)
            return False
        return True

    async def sent(self) -> None:
        """Wait for the acks already due (before the channel closes)."""
        if self._due:
            self._send_soon()
        if self._flush is not None:
            await asyncio.wait([self._flush], timeout=self.SEND_SECONDS)


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


@dataclass(frozen=True)
class Refused:
    """One event of a message that is dead-lettered on its own: why, and its bytes."""

    body: bytes
    reason: str
    detail: str
    job_id: str | None


async def handle_event(
    taken: Taken, bus: Bus, projector: Projector, workers: WorkerUsers = DEFAULT_WORKERS
) -> None:
    """Project the events of one delivery (an event batch or a v1.1 single event) and
    settle it (see the module docstring). Each event is treated on its own: one that is
    unreadable, forbidden or refused by the store for its content is dead-lettered with its
    reason while its neighbours are applied; the delivery is acked once all of them are
    applied or dead-lettered, and handed back whole when the database stays away (its
    events are idempotent by `event_id`)."""
    try:
        items = wire.read_events(taken.body)
    except wire.Unreadable as exc:
        await dead_letter_and_ack(taken, bus, exc.reason, exc.detail, exc.job_id)
        return
    speaker = workers.speaker(taken.user_id)
    events = [i for i in items if not isinstance(i, batches.Unreadable)]
    results = await asyncio.gather(
        *(projector.project(Arrival(e, speaker)) for e in events), return_exceptions=True
    )
    if any(isinstance(r, BaseException) and not isinstance(r, PermanentError) for r in results):
        await taken.hand_back()  # the database stayed away (or worse): nothing settled
        return
    single = len(items) == 1
    refused = [
        Refused(taken.body if single else _json(i.raw), i.reason, i.detail, i.job_id)
        for i in items
        if isinstance(i, batches.Unreadable)
    ]
    for event, result in zip(events, results, strict=True):
        body = taken.body if single else event.model_dump_json().encode()
        if isinstance(result, PermanentError):
            refused.append(
                Refused(body, DeadLetterReason.PERMANENT_ERROR, str(result), str(event.job_id))
            )
        elif result is Outcome.FORBIDDEN:
            detail = f"{taken.user_id} may not report {event.type} on job {event.job_id}"
            refused.append(Refused(body, DeadLetterReason.FORBIDDEN, detail, str(event.job_id)))
    for one in refused:
        try:
            await bus.dead_letter(
                one.body,
                reason=one.reason,
                source_queue=topology.STATUS_EVENTS.name,
                detail=one.detail,
                job_id=one.job_id,
            )
        except Exception:
            log.warning("dead letter not published; handing the events back", exc_info=True)
            await taken.hand_back()
            return
    await taken.ack()


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", errors="replace")


class EventConsumer:
    """The service's consumer of `jobs.status.events`: aio-pika directly, on a channel of its
    own whose prefetch is the projection's batch size, every delivery through
    `handle_event`, acknowledged through `Acks`.

    FastStream's per-delivery machinery (context, middlewares, logging scope) was the
    largest part of the status service's CPU once the projection batched (a sixth of it in
    the bench profile) and the events queue carries four deliveries per job; the other
    subscribers keep FastStream. aio-pika restores the consumer after a reconnection (the
    queue is re-declared passively: it is durable, declared at start-up).
    """

    SETTLE_SECONDS = 10.0  # on stop: how long the deliveries in hand may take to settle

    def __init__(
        self,
        broker: RabbitBroker,
        bus: Bus,
        projector: Projector,
        kind: topology.WorkQueueType = topology.WorkQueueType.CLASSIC,
        prefetch: int = 32,
        workers: WorkerUsers = DEFAULT_WORKERS,
    ) -> None:
        self.broker = broker
        self.bus = bus
        self.projector = projector
        self.workers = workers
        self.queue_name = topology.for_kind(topology.STATUS_EVENTS, kind).name
        self.prefetch = prefetch
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self.acks = Acks()
        self._in_hand = 0  # deliveries being handled
        self._idle = asyncio.Event()

    async def start(self) -> None:
        """Consume; call after the broker is connected and the topology declared.

        On a channel of its own: delivery tags count per channel, and `Acks` acks several
        at a time (`multiple`), which on the broker's shared channel would also settle
        the other subscribers' deliveries. The channel is robust, like the connection:
        after a reconnection aio-pika opens it again with its prefetch and consumer."""
        connection = self.broker._connection
        if not isinstance(connection, AbstractRobustConnection):
            raise RuntimeError("EventConsumer needs a connected broker")
        self._channel = channel = await connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=self.prefetch)
        self._queue = await channel.declare_queue(self.queue_name, passive=True)
        self._tag = await self._queue.consume(self._on_message)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if not self.acks.received(message):
            return
        self._in_hand += 1
        try:
            await handle_event(
                Taken.raw(message, self.acks), self.bus, self.projector, self.workers
            )
        finally:
            self._in_hand -= 1
            if not self._in_hand:
                self._idle.set()

    async def stop(self) -> None:
        """Stop taking deliveries (those in hand are settled or, unacked, handed back by the
        broker when the channel closes)."""
        queue, tag, self._tag = self._queue, self._tag, None
        if queue is not None and tag is not None and not queue.channel.is_closed:
            await queue.cancel(tag)
        if self._in_hand:  # let the batch in hand commit and be acked, not redelivered
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.SETTLE_SECONDS):
                    await self._idle.wait()
        await self.acks.sent()
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            await channel.close()  # what is still unacked goes back to the queue


def subscribe(
    broker: RabbitBroker,
    bus: Bus,
    projector: Projector,
    engine: AsyncEngine,
    hold_seconds: float = HOLD_SECONDS,
    kind: topology.WorkQueueType = topology.WorkQueueType.CLASSIC,
    workers: WorkerUsers = DEFAULT_WORKERS,
) -> EventConsumer:
    """Subscribe the dead-letter consumer; returns the events consumer, to start once the
    broker is connected (`EventConsumer.start`)."""
    subscribe_dead_letters(broker, engine, hold_seconds, kind, workers)
    return EventConsumer(broker, bus, projector, kind, workers=workers)


def subscribe_events(
    broker: RabbitBroker,
    bus: Bus,
    projector: Projector,
    kind: topology.WorkQueueType = topology.WorkQueueType.CLASSIC,
    workers: WorkerUsers = DEFAULT_WORKERS,
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
        await handle_event(Taken.of(msg), bus, projector, workers)


def subscribe_dead_letters(
    broker: RabbitBroker,
    engine: AsyncEngine,
    hold_seconds: float = HOLD_SECONDS,
    kind: topology.WorkQueueType = topology.WorkQueueType.CLASSIC,
    workers: WorkerUsers = DEFAULT_WORKERS,
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
            letter = wire.read_dead_letter(
                msg.body, headers, msg.message_id, user_id_of(msg), workers
            )
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
