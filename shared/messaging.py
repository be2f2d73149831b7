"""What hybridq reads of the messaging libraries' internals, in one place.

aio-pika, aiormq and FastStream have no public way to do a few things hybridq needs: cancel
a subscriber's AMQP consumer before its handlers finish (`cancel_consumer`), publish on the
broker's channel without waiting for each frame's write (`broker_channel`), see which
consumers a channel holds and which the broker still has (`held_consumers`,
`broker_consumers`), see whether a delivery's channel is open (`delivery_channel`), hand
FastStream a connection it did not make (`adopt`), and let a
connection queue more frames than aiormq's default (`set_frame_queue`). Every private
attribute those need is read here and nowhere else; shared/connection.py also overrides
the private hooks named in `HOOKS`.

tests/unit/test_messaging_internals.py builds real objects of the pinned versions and
fails when one no longer has what this module reads, or a hook is gone.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import Any, cast

import aiormq
import aiormq.connection
from aio_pika import RobustChannel, RobustConnection
from aio_pika.abc import AbstractChannel
from faststream.rabbit import RabbitBroker
from faststream.rabbit.subscriber import RabbitSubscriber

HOOKS: dict[type[Any], tuple[str, ...]] = {
    RobustConnection: ("_on_connected", "_on_connection_close"),
    RabbitBroker: ("_connect",),
}
"""The private methods shared/connection.py overrides (each calls the library's own)."""

CHANNEL_CLOSE_CALLBACK = "RobustChannel._on_close"
"""How aio-pika's log line names a robust channel's close callback that failed (the
line shared/logs.py drops when the connection under it is gone)."""


# -- aiormq ---------------------------------------------------------------------------------
def set_frame_queue(size: int) -> None:
    """Let every aiormq connection queue `size` frames for its writer (aiormq's
    `Connection.FRAME_BUFFER_SIZE`, read when a connection is made)."""
    aiormq.connection.Connection.FRAME_BUFFER_SIZE = size


# -- aio-pika -------------------------------------------------------------------------------
def delivery_channel(message: Any) -> aiormq.abc.AbstractChannel | None:
    """The aiormq channel an aio-pika `IncomingMessage` came on, read without raising
    (its `channel` property raises once that channel is closed); None for a message with
    none (FastStream's in-memory test broker gives its deliveries a mock)."""
    channel = getattr(message, "_IncomingMessage__channel", None)
    return channel if isinstance(channel, aiormq.abc.AbstractChannel) else None


def channel_closing(channel: RobustChannel) -> bool:
    """The channel was closed on purpose (aio-pika will not restore it)."""
    return bool(channel._close_called)


def held_consumers(channel: RobustChannel) -> Iterator[tuple[str, set[str]]]:
    """(queue name, consumer tags) of every queue on `channel` that aio-pika holds a
    consumer for (and restores after a reconnection)."""
    for queue in chain(*channel._queues.values()):
        if queue._consumers:
            yield queue.name, set(queue._consumers)


def broker_consumers(channel: RobustChannel) -> set[str]:
    """The consumer tags the broker's side of `channel` (aiormq's channel) has; none when
    the channel is closed or not open yet."""
    underlay = None if channel.is_closed else channel._channel
    if underlay is None:
        return set()
    return set(cast(aiormq.Channel, underlay.channel).consumers)


# -- FastStream -----------------------------------------------------------------------------
def broker_channel(broker: RabbitBroker) -> AbstractChannel | None:
    """The connected broker's channel; None in memory (`TestRabbitBroker`) or before it is
    connected."""
    channel = getattr(broker, "_channel", None)
    return channel if isinstance(channel, AbstractChannel) else None


async def cancel_consumer(subscriber: RabbitSubscriber) -> None:
    """Send basic.cancel for the subscriber's consumer now and clear its tag, so
    FastStream's own `stop()` skips its cancel."""
    queue = getattr(subscriber, "_queue_obj", None)
    tag = getattr(subscriber, "_consumer_tag", None)
    if queue is not None and tag is not None and not queue.channel.is_closed:
        await queue.cancel(tag)
        subscriber._consumer_tag = None


def connection_kwargs(broker: RabbitBroker) -> dict[str, Any]:
    """The arguments FastStream would open its connection with (`connect_robust`'s)."""
    return dict(broker._connection_kwargs)


async def adopt(broker: RabbitBroker, connection: RobustConnection) -> None:
    """Make `connection` the broker's, as FastStream 0.7's `RabbitBroker._connect` does with
    the one it makes: its close and reconnect callbacks, and its channel."""
    for close_callback in broker._on_close:
        connection.close_callbacks.add(close_callback)
    for reconnect_callback in broker._on_reconnected:
        connection.reconnect_callbacks.add(reconnect_callback)
    if broker._channel is None:
        broker.config.connect(connection)
        broker._channel = await broker.config.channel_manager.get_channel()
