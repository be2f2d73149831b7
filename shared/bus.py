"""Broker factory and the one way hybridq publishes: JSON, persistent, publisher-confirmed."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import unquote, urlsplit
from uuid import uuid4

import aiormq
from aio_pika import DeliveryMode
from aiormq import spec
from aiormq.abc import DeliveredMessage
from aiormq.exceptions import PublishError
from faststream import BaseMiddleware
from faststream.exceptions import SubscriberNotFound
from faststream.rabbit import RabbitBroker, RabbitExchange
from faststream.rabbit.response import RabbitPublishCommand
from faststream.rabbit.schemas import Channel
from pydantic import BaseModel

from shared import messages, messaging, topology
from shared.connection import FailoverBroker
from shared.contracts import batches
from shared.contracts.events import Event
from shared.contracts.jobs import PlacedJob
from shared.contracts.workers import WorkerMessage
from shared.dead_letters import (
    Sent,
)

JSON = "application/json"
CONFIRM_TIMEOUT_SECONDS = 15.0
"""The longest a publish waits for its confirm. A confirm the broker never sends (seen on
RabbitMQ 3.10 for a publish to the cancellations stream just after the node leading it
left, on a connection that stayed up) would otherwise hold the publisher for ever: the
handler behind it never settles its delivery and the process cannot drain. Past this
bound the publish raises `TimeoutError`, which every caller treats as broker trouble
(transient: hand back, retry); the message may still have arrived, which the consumers'
de-duplication already covers."""
log = logging.getLogger("hybridq.bus")


def broker_user(amqp_url: str) -> str:
    """The user a service connects as (the first URL's; all name the same user)."""
    return unquote(urlsplit(amqp_url.split(",")[0].strip()).username or "guest")


def _stamp_user(user: str) -> type[BaseMiddleware]:
    """Middleware that sets `user_id` on every publish: RabbitMQ refuses a message whose
    `user_id` is not the connection's user, so consumers can trust who published it."""

    class StampUser(BaseMiddleware):
        async def publish_scope(self, call_next: Callable[[Any], Awaitable[Any]], cmd: Any) -> Any:
            if isinstance(cmd, RabbitPublishCommand):
                cmd.message_options["user_id"] = user
            return await call_next(cmd)

    return StampUser


def make_broker(amqp_url: str, prefetch: int, *, graceful_timeout: float = 25.0) -> RabbitBroker:
    """A broker whose channels confirm publishes and bound unacked deliveries, whose
    messages carry the connection's user as `user_id`, and whose `amqp_url` may name
    several cluster nodes (shared/connection.py).

    Every publish is mandatory (FastStream's default) and `on_return_raises` turns a
    message the broker returns -- no queue took it -- into `aio_pika.exceptions.
    DeliveryError` for the publisher, instead of a confirm that looks like success.
    The handler then hands its delivery back (nack) rather than acking it.

    Handlers are called without FastDepends (`apply_types=False`): subscribe them with
    `decoder=shared.service.the_delivery` and they receive the delivery itself.
    """
    return FailoverBroker(
        amqp_url,
        middlewares=[_stamp_user(broker_user(amqp_url))],
        default_channel=Channel(
            prefetch_count=prefetch, publisher_confirms=True, on_return_raises=True
        ),
        graceful_timeout=graceful_timeout,
        # no dependency injection: handlers take the delivery from the decoder
        # (shared.service.the_delivery), with no worker-thread hop per message
        apply_types=False,
        reconnect_interval=1.0,  # back within seconds after a broker blip (readyz: < 5 s)
        logger=logging.getLogger("hybridq.faststream"),
        log_level=logging.DEBUG,
    )


def _body(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


LINGER_SECONDS = 0.005
"""The longest an event waits for its batch (contract §3.2: at most 10 ms), and only while
the publisher's previous batch is still unconfirmed: when nothing is in flight, a batch
leaves at the end of the event-loop turn that emitted its events."""


class EventBatcher:
    """Lifecycle events several to a message (contract v1.2 §3.2).

    `emit` queues events and returns a future resolved once the batch that carries them is
    confirmed (or failed with the publish's error). What one turn of the event loop emits
    leaves together at the end of that turn; while a batch is still unconfirmed, new events
    gather for the next one until that confirm (or LINGER_SECONDS) comes, as Nagle's
    algorithm does for TCP: no waiting when idle, larger batches under load. Batches leave in
    the order their events were emitted, on one channel, so their order is kept.
    """

    def __init__(
        self, send: Callable[[bytes], Awaitable[None]], *, linger: float = LINGER_SECONDS
    ) -> None:
        self._send = send
        self._linger = linger
        self._pending: list[tuple[Event, asyncio.Future[None]]] = []
        self._in_flight = 0
        self._scheduled: asyncio.Handle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def emit(self, events: Sequence[Event]) -> asyncio.Future[None]:
        """Queue `events` (in order) for the next batch; the future is the batch's confirm."""
        loop = asyncio.get_running_loop()
        confirmed: asyncio.Future[None] = loop.create_future()
        if not events:
            confirmed.set_result(None)
            return confirmed
        parts = [(e, loop.create_future()) for e in events]
        self._pending.extend(parts)
        _gather_into(confirmed, [f for _, f in parts])
        confirmed.add_done_callback(_retrieved)  # an emit nobody awaits logs no error
        if self._scheduled is None:
            if self._in_flight:
                self._scheduled = loop.call_later(self._linger, self._flush)
            else:
                self._scheduled = loop.call_soon(self._flush)
        return confirmed

    def _flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        pending, self._pending = self._pending, []
        start = 0
        for body, count in batches.encode([e for e, _ in pending]):
            waiters = [f for _, f in pending[start : start + count]]
            start += count
            self._in_flight += 1
            task = asyncio.ensure_future(self._publish(body, waiters))  # started in order
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _publish(self, body: bytes, waiters: list[asyncio.Future[None]]) -> None:
        try:
            await self._send(body)
        except BaseException as exc:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc if isinstance(exc, Exception) else DeliveryStopped())
        else:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        finally:
            self._in_flight -= 1
            if self._pending and not self._in_flight:  # what gathered meanwhile goes now
                if self._scheduled is not None:
                    self._scheduled.cancel()
                self._scheduled = asyncio.get_running_loop().call_soon(self._flush)

    async def drain(self) -> None:
        """Send what is queued now and wait for every batch in flight."""
        if self._pending:
            self._flush()
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def confirmed_together(*publishes: Awaitable[None]) -> None:
    """Await several publishes started at once (an event batch and a dispatch, say): all
    are waited for, then the first error, if any, is raised (none is left unobserved)."""
    results = await asyncio.gather(*publishes, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


class DeliveryStopped(Exception):
    """The batch's publish was cancelled (the process is stopping): not confirmed."""


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _gather_into(target: asyncio.Future[None], parts: list[asyncio.Future[None]]) -> None:
    """Resolve `target` once every part is done: with the first part's error, if any."""
    left = len(parts)

    def done(part: asyncio.Future[None]) -> None:
        nonlocal left
        left -= 1
        if target.done():
            return
        if not part.cancelled() and part.exception() is not None:
            target.set_exception(part.exception())  # type: ignore[arg-type]
        elif left == 0:
            target.set_result(None)

    for part in parts:
        part.add_done_callback(done)


class Bus:
    """Publishes hybridq messages. Every publish is persistent, mandatory and awaits its
    confirm (a return -- no queue took it -- raises `aiormq.exceptions.PublishError`), for
    at most `confirm_timeout` seconds (then `TimeoutError`: CONFIRM_TIMEOUT_SECONDS).

    On a connected broker it publishes on the broker's channel through aiormq directly,
    without waiting for each frame to be written before the next publish may start
    (aiormq's `wait=False`): concurrent publishes then leave in one `send()` per event-loop
    turn (shared/connection.py's `CoalescingWriter`) instead of one each (docs/performance.md
    has what a `send()` per frame costs). The confirm is still
    awaited, so nothing is acknowledged before the broker has the message. FastStream's
    in-memory test broker (no real channel) gets the same message through
    `broker.publish`.
    """

    def __init__(
        self,
        broker: RabbitBroker,
        *,
        source: str = batches.STATUS_SOURCE,
        confirm_timeout: float = CONFIRM_TIMEOUT_SECONDS,
        linger: float = LINGER_SECONDS,
    ) -> None:
        """`source`: who speaks (`router`, `status`, or a site's name for its workers): the
        event batches' routing key is `events.<source>` (contract §3.2)."""
        self.broker = broker
        self.confirm_timeout = confirm_timeout
        amqp_url = getattr(broker, "node_urls", [""])[0]
        self.user = broker_user(amqp_url) if amqp_url else None
        self.events_key = batches.routing_key(source)
        self._batcher = EventBatcher(self._send_batch, linger=linger)

    async def _send_batch(self, body: bytes) -> None:
        await self._publish(body, topology.EVENTS, self.events_key)

    async def send(self, envelope: messages.Envelope) -> None:
        """Publish one built message (shared/messages.py) and wait for its confirm."""
        await self._publish(
            envelope.body,
            envelope.exchange,
            envelope.routing_key,
            priority=envelope.priority,
            headers=envelope.headers,
            message_id=envelope.message_id,
            expiration=envelope.expiration,
        )

    async def _publish(
        self,
        body: bytes,
        exchange: RabbitExchange | str,
        routing_key: str,
        *,
        priority: int | None = None,
        headers: dict[str, Any] | None = None,
        message_id: str | None = None,
        expiration: float | None = None,
    ) -> None:
        channel = messaging.broker_channel(self.broker)
        if channel is not None:
            properties = spec.Basic.Properties(
                content_type=JSON,
                delivery_mode=DeliveryMode.PERSISTENT.value,
                priority=priority,
                headers=headers,
                message_id=message_id or str(uuid4()),
                expiration=None if expiration is None else str(int(expiration * 1000)),
                user_id=self.user,
            )
            # the concrete aiormq channel: its basic_publish takes `wait`
            underlay = cast(aiormq.Channel, await channel.get_underlay_channel())
            await underlay.basic_publish(
                body,
                exchange=exchange if isinstance(exchange, str) else exchange.name,
                routing_key=routing_key,
                properties=properties,
                mandatory=True,
                wait=False,
                timeout=self.confirm_timeout,  # raises TimeoutError (CONFIRM_TIMEOUT_SECONDS)
            )
            return
        await self.broker.publish(
            body,
            exchange=exchange,
            routing_key=routing_key,
            persist=True,
            content_type=JSON,
            priority=priority,
            headers=headers,
            message_id=message_id or str(uuid4()),
            expiration=expiration,
            timeout=self.confirm_timeout,
        )

    def emit(self, *events: Event) -> asyncio.Future[None]:
        """Put `events` in this publisher's next event batch; the future resolves when that
        batch is confirmed. Await it before settling a delivery that depends on them."""
        return self._batcher.emit(events)

    async def event(self, event: Event) -> None:
        """Publish one event (in the next batch) and wait for its batch's confirm."""
        await self._batcher.emit((event,))

    async def drain(self) -> None:
        """Send the events still queued and wait for their batches (before stopping)."""
        await self._batcher.drain()

    async def worker_message(
        self, message: WorkerMessage, *, expiration: float | None = None
    ) -> None:
        """A worker's heartbeat or lease on `jobs.events` (`worker.*`); a heartbeat expires
        (`expiration` seconds) rather than pile up while the status service is away."""
        await self._publish(
            _body(message),
            topology.EVENTS,
            message.routing_key,
            message_id=str(message.message_id),
            expiration=expiration,
        )

    async def cancellations_marker(self, marker: str) -> None:
        """A sync marker into the cancellations stream (shared/cancellations.py)."""
        await self._publish(
            json.dumps({"marker": marker}).encode(),
            topology.EVENTS,
            topology.CANCELLATIONS_SYNC_KEY,
            message_id=marker,
        )

    async def link_marker(self, marker: str) -> bool:
        """A barrier marker round the hybrid link (shared/cancellations.py); False when no
        link takes it (unroutable: a broker without the link)."""
        try:
            confirmation = await self.broker.publish(
                json.dumps({"marker": marker}).encode(),
                exchange=topology.EVENTS,
                routing_key=topology.LINK_SYNC_KEY,
                persist=True,
                content_type=JSON,
                message_id=marker,
                timeout=self.confirm_timeout,
            )
        except SubscriberNotFound:  # the in-memory test broker's "unroutable"
            return False
        except PublishError:  # a basic.return (mandatory + on_return_raises): no link
            return False
        return not isinstance(confirmation, DeliveredMessage)  # a return: unroutable

    async def submit(self, body: bytes) -> None:
        """Publish a client's JobSubmitted body to `jobs.intake`."""
        await self.send(messages.submitted_body(body))

    async def dispatch(self, job: PlacedJob) -> None:
        """Hand a placed job to its site's work queue, with the job's priority."""
        await self.send(messages.dispatch(job))

    async def delay(self, job: PlacedJob, now: datetime, *, same_park: bool = False) -> None:
        """Park a job in the delay tier that fits the time left until `job.run_at`
        (`messages.parking`)."""
        await self.send(messages.parking(job, now, same_park=same_park))

    async def dead_letter(
        self,
        body: bytes,
        *,
        reason: str,
        source_queue: str,
        detail: str = "",
        job_id: str | None = None,
    ) -> Sent:
        """Send a message that will not be run to `jobs.dead-letter`, saying why; returns
        the dead letter's id and time (`shared.dead_letters.dead_lettered_event`)."""
        sent = Sent(str(uuid4()), datetime.now(UTC))
        await self.send(
            messages.dead_letter(
                body,
                reason=reason,
                source_queue=source_queue,
                detail=detail,
                job_id=job_id,
                sent=sent,
            )
        )
        log.warning(
            "dead-lettered",
            extra={"job_id": job_id, "reason": reason, "source_queue": source_queue},
        )
        return sent
