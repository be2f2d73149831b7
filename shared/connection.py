"""Connections to a RabbitMQ cluster: `AMQP_URL` may name several nodes, comma-separated.

A service connects to the first node that answers and, when that node is lost, moves on to
the next one (round robin), restoring its channels, declarations and consumers there: the
quorum queues it uses live on every node. What was in flight when the node died is not
lost: a delivery the service had not acked is redelivered by the broker (to this service
on its new connection, or to another replica), and a publish whose confirm never came
raises, so the delivery being handled is not acked and is processed (and published) again.

aio-pika's robust connection reconnects to one URL; `FailoverConnection` is the one place
that knows how it picks that URL (it reads `self.url` once per connection attempt:
tests/unit/test_messaging_internals.py fails if a new aio-pika release reads it elsewhere,
tests/integration/test_first_node_down.py if it stops moving on). Whatever it reads of the
libraries' private state goes through shared/messaging.py.

`FailoverConnection` also watches its consumers (`lost_consumers`): aio-pika restores them
after a reconnection, but a restore that fails half-way (seen in
tests/cluster/test_node_loss.py: after the node left, the status write side's connection was
up again and `jobs.status.events` had no consumer for minutes) is not tried again. A consumer
aio-pika holds that the broker's channel no longer has, on a connection that is up, for
`WATCH_ROUNDS` checks in a row, closes the connection (`move_on`): aio-pika then reconnects,
to the next node, and restores every channel and consumer from scratch.

`CoalescingTransport` (aiormq's documented `TransportFactory` extension point) sends the
AMQP frames written in one event-loop turn in one `send()`: a busy service publishes and
acks many messages per turn, and on a shared host every system call costs both ends
(docs/performance.md has the measurements).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Sequence
from typing import Any, cast
from weakref import WeakSet

import aio_pika
import aiormq.connection
import aiormq.exceptions
from aio_pika import RobustChannel, RobustConnection
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aiormq.connection import TCPTransportFactory, TLSTransportFactory, TransportFactory
from faststream.rabbit import RabbitBroker
from yarl import URL

from shared import messaging, tls
from shared.errors import TLSRefused

log = logging.getLogger("hybridq.connection")

WATCH_SECONDS = 5.0
"""How often a connection checks that the consumers aio-pika holds are on the broker."""
WATCH_ROUNDS = 3
"""Checks in a row a consumer must be missing before the connection is closed and restored
(a restore in progress is a few seconds at most)."""

FRAME_QUEUE = 1024
"""Frames a connection may queue for its writer (aiormq's `Connection.FRAME_BUFFER_SIZE`,
10 by default). With 10, publishers on a channel wait for the writer in turn (aiormq holds
the channel lock while it queues a frame), so every frame leaves in its own turn and its
own `send()`; with room for many, one turn's frames leave together. The queue stays
bounded by what is in flight: every publish awaits its confirm, every handler its
delivery (prefetch). docs/performance.md has the measurements."""
messaging.set_frame_queue(FRAME_QUEUE)
_numbers = itertools.count(1)  # connections of this process, for the lost/reconnected lines


def _cause(closing: asyncio.Future[Any]) -> str:
    """Why a connection closed, on one line."""
    if closing.cancelled():
        return "closed"
    exc = closing.exception()
    return " ".join(f"{type(exc).__name__}: {exc}".split()) if exc else "closed"


class _OneTLSLine(logging.Filter):
    """aiormq logs every transport that failed (at ERROR) before raising it; a TLS failure
    is then logged once, by whoever handles it (`TLSRefused` at start: one line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (args and isinstance(args[0], BaseException) and tls.failed_in_tls(args[0]))


logging.getLogger("aiormq.connection").addFilter(_OneTLSLine())


class CoalescingWriter:
    """A `StreamWriter` whose writes within one event-loop turn leave in one `send()`.

    Order is kept (one buffer, flushed in order at the end of the turn); `close` and
    `write_eof` flush first. `drain` does not flush: aiormq drains after every published
    frame, which would send each on its own again; flow control still holds (the buffer
    only grows within one turn, and the transport's own high-water mark pauses writers).
    """

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._pending: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        if self._writer.transport.is_closing():
            # the connection was lost within this turn: the frames go nowhere, as with any
            # lost connection (aiormq fails what waited on them; aio-pika reconnects), and
            # writing them would raise in this callback, where no one handles it
            return
        self._writer.write(data)

    async def drain(self) -> None:
        await self._writer.drain()

    def close(self) -> None:
        self.flush()
        self._writer.close()

    def write_eof(self) -> None:
        self.flush()
        self._writer.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


class CoalescingTransport(TransportFactory):
    """aiormq's TCP or TLS transport (by the URL's scheme), writing through a
    `CoalescingWriter`.

    For TLS, aiormq hands over the context it made from the URL (`cafile`, `certfile`,
    `keyfile`: shared/tls.py) in `ssl_context_provider`; one that would not check the
    broker's chain and host name (aiormq's `no_verify_ssl`) is refused here, before any
    byte is sent. The context is cached by the provider, so the TLS factory uses this one.
    """

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        plain = url.scheme == "amqp"
        if not plain:
            try:
                context = await kwargs["ssl_context_provider"].get_context()
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                raise tls.unloadable(url, exc) from exc
            if not tls.verifying(context):
                raise tls.unverified(url)
        inner = TCPTransportFactory() if plain else TLSTransportFactory()
        reader, writer = await inner.create(url, **kwargs)
        return reader, cast(asyncio.StreamWriter, CoalescingWriter(writer))


def node_urls(amqp_url: str) -> list[str]:
    """The node URLs of an `AMQP_URL` setting (one, or several comma-separated)."""
    urls = [u.strip() for u in amqp_url.split(",") if u.strip()]
    if not urls:
        raise ValueError("AMQP_URL names no broker")
    return urls


class FailoverConnection(RobustConnection):
    """A robust connection that tries the next node's URL after a lost connection or a
    failed connection attempt."""

    def __init__(
        self,
        url: URL,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        node_urls: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        self._urls = [URL(u) for u in node_urls] or [URL(url)]
        self._index = 0
        self._move_on = False
        super().__init__(self._urls[0], loop=loop, **kwargs)
        self._move_on = False  # reading the URL's query while constructing is no attempt
        # passed on to aiormq.connect (aio-pika keeps only the parameters it knows)
        self.kwargs["transport_factory"] = CoalescingTransport()
        self._watched: WeakSet[AbstractRobustChannel] = WeakSet()
        self._watch: asyncio.Task[None] | None = None
        # one "lost" line when a live connection goes, one "reconnected" line when it is
        # back (the client libraries' own lines about it are dropped: shared/logs.py)
        self._up = False
        self._lost_at: float | None = None
        self._label = f"{os.getpid()}-{next(_numbers)}"

    @property
    def url(self) -> URL:
        """Read once per connection attempt: after a failure or a loss, the next node."""
        if self._move_on:
            self._index = (self._index + 1) % len(self._urls)
        self._move_on = True  # until this attempt connects
        return self._urls[self._index]

    @url.setter
    def url(self, value: URL) -> None:
        if hasattr(self, "_urls"):
            self._urls[self._index] = URL(value)

    @property
    def current_url(self) -> URL:
        return self._urls[self._index]

    def __str__(self) -> str:
        url = self.current_url
        return str(url.with_password("******") if url.password else url)

    def channel(
        self,
        channel_number: int | None = None,
        publisher_confirms: bool = True,
        on_return_raises: bool = False,
    ) -> AbstractRobustChannel:
        channel = super().channel(
            channel_number=channel_number,
            publisher_confirms=publisher_confirms,
            on_return_raises=on_return_raises,
        )
        self._watched.add(channel)
        return channel

    async def _on_connected(self) -> None:
        self._move_on = False
        await super()._on_connected()  # channels and consumers restored, or it raised
        if self._lost_at is not None:
            log.info(
                "reconnected to the broker",
                extra={
                    "node": str(self),
                    "connection": self._label,
                    "down_seconds": round(time.monotonic() - self._lost_at, 1),
                },
            )
        self._lost_at = None
        self._up = True
        if self._watch is None or self._watch.done():
            self._watch = asyncio.create_task(self._watch_consumers(), name="consumer-watch")

    async def close(self, exc: aiormq.abc.ExceptionType | None = asyncio.CancelledError) -> None:
        if self._watch is not None:
            self._watch.cancel()
        await super().close(exc)

    def lost_consumers(self) -> set[tuple[int, str, str]]:
        """(channel, queue, consumer tag) of every consumer aio-pika holds that the broker's
        channel does not have, while the connection is up; empty while it is down (aio-pika
        is reconnecting)."""
        transport = self.transport
        if self.is_closed or transport is None or transport.connection.is_closed:
            return set()
        lost: set[tuple[int, str, str]] = set()
        for channel in tuple(self._watched):
            if not isinstance(channel, RobustChannel) or messaging.channel_closing(channel):
                continue
            queues = list(messaging.held_consumers(channel))
            if not queues:
                continue
            held = messaging.broker_consumers(channel)
            for name, tags in queues:
                lost |= {(id(channel), name, tag) for tag in tags - held}
        return lost

    async def _watch_consumers(self) -> None:
        missing: dict[tuple[int, str, str], int] = {}
        while not self.is_closed:
            await asyncio.sleep(WATCH_SECONDS)
            lost = self.lost_consumers()
            missing = {key: missing.get(key, 0) + 1 for key in lost}
            if not missing or max(missing.values()) < WATCH_ROUNDS:
                continue
            queues = sorted({queue for _, queue, _ in missing})
            log.warning(
                "consumers lost without a reconnection: reconnecting",
                extra={"queues": queues, "seconds": WATCH_ROUNDS * WATCH_SECONDS},
            )
            missing = {}
            await self.move_on("consumers lost")

    async def move_on(self, reason: str) -> None:
        """Close the live connection: aio-pika reconnects, to the next node of `AMQP_URL`
        (a lost connection moves on), and restores every channel and consumer there."""
        transport = self.transport
        if transport is not None and not transport.connection.is_closed:
            log.warning("closing the broker connection to reconnect", extra={"reason": reason})
            await asyncio.gather(
                transport.connection.close(ConnectionError(reason)), return_exceptions=True
            )

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        self._move_on = True
        if self._up and not self.close_called:
            self._up = False
            self._lost_at = time.monotonic()
            log.warning(
                "broker connection lost; reconnecting",
                extra={"node": str(self), "connection": self._label, "cause": _cause(closing)},
            )
        await super()._on_connection_close(closing)


async def connect(amqp_url: str, **kwargs: Any) -> AbstractRobustConnection:
    """A robust connection to one of the nodes of `amqp_url`, moving on when it is lost."""
    return await connect_any(node_urls(amqp_url), **kwargs)


async def connect_any(urls: Sequence[str], **kwargs: Any) -> AbstractRobustConnection:
    """The first node of `urls` that answers, each tried once in turn: aio-pika's first
    connect does not move on by itself, so a process started (or restarted) while the
    first node is down would otherwise never connect. Raises the last node's error, or
    `TLSRefused` (one line: URL and cause) when a node's TLS could not be verified."""
    last: Exception | None = None
    for i in range(len(urls)):
        order = [*urls[i:], *urls[:i]]
        try:
            connection: AbstractRobustConnection = await aio_pika.connect_robust(
                order[0], connection_class=FailoverConnection, node_urls=order, **kwargs
            )
            return connection
        except (OSError, aiormq.exceptions.AMQPConnectionError) as exc:
            # a TLS refusal is kept over a later node's error: it is the one to fix
            refused = tls.refusal(order[0], exc)
            if not isinstance(last, TLSRefused):
                last = refused or exc
    assert last is not None
    raise last


class FailoverBroker(RabbitBroker):
    """FastStream's RabbitBroker on a `FailoverConnection` over every node of `AMQP_URL`.

    `_connect` makes the connection with `connect_any`, so a broker started while the first
    node is down connects to the next, and hands it to FastStream as its own
    (`messaging.adopt`).
    """

    def __init__(self, amqp_url: str, **kwargs: Any) -> None:
        self.node_urls = node_urls(amqp_url)
        self.connection: FailoverConnection | None = None
        super().__init__(self.node_urls[0], **kwargs)

    async def _connect(self) -> RobustConnection:
        kwargs = {k: v for k, v in messaging.connection_kwargs(self).items() if k != "url"}
        connection = cast(RobustConnection, await connect_any(self.node_urls, **kwargs))
        self.connection = cast(FailoverConnection, connection)
        await messaging.adopt(self, connection)
        return connection
