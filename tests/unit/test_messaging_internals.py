"""What shared/messaging.py reads of aio-pika, aiormq and FastStream is still there: each
check builds real objects of the installed (pinned) versions, no broker needed, and fails
when a release renames or drops what hybridq reads."""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any, cast

import aiormq
import aiormq.connection
import pytest
from aio_pika import RobustChannel, RobustConnection, RobustQueue
from aio_pika.abc import AbstractChannel
from aio_pika.connection import Connection
from faststream.rabbit import RabbitBroker
from yarl import URL

from shared import connection, messaging

URL_ = "amqp://guest:guest@127.0.0.1:1/"  # never connected to


def _channel() -> RobustChannel:
    return RobustChannel(RobustConnection(URL(URL_)))  # as connection.channel() makes it


async def test_the_frame_queue_is_aiormqs_class_attribute() -> None:
    assert "FRAME_BUFFER_SIZE" in vars(aiormq.connection.Connection)
    assert aiormq.connection.Connection.FRAME_BUFFER_SIZE == connection.FRAME_QUEUE
    source = inspect.getsource(aiormq.connection.Connection)
    assert "maxsize=self.FRAME_BUFFER_SIZE" in source  # read where the frame queue is made


async def test_a_robust_channel_has_what_the_consumer_watch_reads() -> None:
    channel = _channel()
    assert messaging.channel_closing(channel) is False
    assert list(messaging.held_consumers(channel)) == []
    assert messaging.broker_consumers(channel) == set()  # not open: no aiormq channel yet

    queue = RobustQueue(channel, "jobs.status.events")
    queue._consumers["ctag-1"] = {}
    channel._queues[queue.name].add(queue)
    assert list(messaging.held_consumers(channel)) == [("jobs.status.events", {"ctag-1"})]

    await channel.close()
    assert messaging.channel_closing(channel) is True


async def test_the_broker_side_consumers_are_aiormqs_channel_consumers() -> None:
    channel = _channel()
    assert "_channel" in vars(channel)
    assert channel._channel is None  # until it is open
    aiormq_channel = SimpleNamespace(is_closed=False, consumers={"ctag-1": None})
    channel._channel = SimpleNamespace(channel=aiormq_channel)  # type: ignore[assignment]
    assert messaging.broker_consumers(channel) == {"ctag-1"}
    aiormq_channel.is_closed = True
    assert messaging.broker_consumers(channel) == set()
    init = inspect.getsource(aiormq.Channel.__init__)
    assert "self.consumers" in init


async def test_a_faststream_broker_has_what_adopt_and_broker_channel_read() -> None:
    broker = RabbitBroker(URL_)
    assert messaging.broker_channel(broker) is None  # not connected
    kwargs = messaging.connection_kwargs(broker)
    assert kwargs["url"] is not None
    assert broker._on_close == ()
    assert broker._on_reconnected == ()
    assert callable(broker.config.connect)
    assert callable(broker.config.channel_manager.get_channel)

    # adopt does what FastStream's own _connect does with its connection
    source = inspect.getsource(RabbitBroker._connect)
    for read in (
        "self._connection_kwargs",
        "self._on_close",
        "self._on_reconnected",
        "if self._channel is None",
        "self.config.connect(connection)",
        "self._channel = await self.config.channel_manager.get_channel()",
    ):
        assert read in source, read

    channel = _channel()
    broker._channel = channel  # type: ignore[assignment]
    assert messaging.broker_channel(broker) is channel
    assert isinstance(channel, AbstractChannel)


async def test_a_subscriber_has_the_consumer_that_cancel_consumer_reads() -> None:
    broker = RabbitBroker(URL_)
    subscriber = broker.subscriber("jobs.intake")
    assert getattr(subscriber, "_queue_obj", "missing") is None
    assert getattr(subscriber, "_consumer_tag", "missing") is None

    cancelled: list[str] = []

    class Queue:
        channel = SimpleNamespace(is_closed=False)

        async def cancel(self, tag: str) -> None:
            cancelled.append(tag)

    subscriber._queue_obj = cast(Any, Queue())
    subscriber._consumer_tag = "ctag-7"
    await messaging.cancel_consumer(subscriber)
    assert cancelled == ["ctag-7"]
    assert subscriber._consumer_tag is None
    stop = inspect.getsource(type(subscriber).stop)
    assert "self._consumer_tag is not None" in stop  # so its own stop skips the cancel


@pytest.mark.parametrize(
    ("library", "hook"), [(c, h) for c, hooks in messaging.HOOKS.items() for h in hooks]
)
def test_the_hooks_shared_connection_overrides_exist(library: type[Any], hook: str) -> None:
    assert inspect.iscoroutinefunction(getattr(library, hook))


def test_aio_pika_reads_the_url_once_per_connection_attempt() -> None:
    connect = inspect.getsource(Connection.connect)
    assert connect.count("self.url") == 1  # FailoverConnection.url moves on when read
    assert "**self.kwargs" in connect  # transport_factory reaches aiormq.connect
    assert "transport_factory" in inspect.signature(aiormq.connection.Connection).parameters


def test_the_publish_path_and_the_log_line_names_are_there() -> None:
    assert "wait" in inspect.signature(aiormq.Channel.basic_publish).parameters
    assert "timeout" in inspect.signature(aiormq.Channel.basic_publish).parameters
    owner, method = messaging.CHANNEL_CLOSE_CALLBACK.split(".")
    assert owner == RobustChannel.__name__
    assert inspect.iscoroutinefunction(getattr(RobustChannel, method))


def test_a_delivery_names_its_channel_where_delivery_channel_reads_it() -> None:
    from aio_pika.message import IncomingMessage
    from pamqp.commands import Basic
    from pamqp.header import ContentHeader

    aiormq_channel = aiormq.Channel.__new__(aiormq.Channel)
    delivered = aiormq.abc.DeliveredMessage(
        delivery=Basic.Deliver(consumer_tag="c", delivery_tag=1, exchange="", routing_key="q"),
        header=ContentHeader(),
        body=b"{}",
        channel=aiormq_channel,
    )
    message = IncomingMessage(delivered)
    assert messaging.delivery_channel(message) is aiormq_channel
    assert messaging.delivery_channel(SimpleNamespace()) is None
