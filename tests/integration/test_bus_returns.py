"""Mandatory publishes fail loudly: a message no queue takes is an error, not a confirm;
a confirm that never comes is an error too, after a bound, not a wait for ever."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest
from aio_pika.exceptions import DeliveryError
from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange, RabbitQueue

from shared.bus import Bus, make_broker
from shared.connection import CoalescingWriter
from tests.conftest import free_port
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.connected


async def test_a_publish_no_queue_takes_raises(amqp_url: str) -> None:
    nowhere = RabbitExchange("test.nowhere", type=ExchangeType.DIRECT, durable=False)
    broker = make_broker(amqp_url, prefetch=1)
    await broker.connect()
    try:
        await broker.declare_exchange(nowhere)
        bus = Bus(broker)
        with pytest.raises(DeliveryError):
            await bus._publish(b"{}", nowhere, "nobody-listens")
        queue = await broker.declare_queue(RabbitQueue("test.somebody", auto_delete=True))
        await queue.bind(await broker.declare_exchange(nowhere), routing_key="somebody")
        await bus._publish(b"{}", nowhere, "somebody")  # routed: confirmed, no error
    finally:
        await broker.stop()
        await remove(amqp_url, exchanges=["test.nowhere"])


async def test_concurrent_publishes_share_sends_and_each_is_confirmed(
    amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publishes do not wait for one another's frames (aiormq `wait=False` and a deep frame
    queue), so one turn's publishes leave in one send; each still awaits its confirm:
    every message is in the queue when the publishes return."""
    sends: list[int] = []
    flush = CoalescingWriter.flush

    def counted(self: CoalescingWriter) -> None:
        if self._pending:
            sends.append(len(self._pending))
        flush(self)

    monkeypatch.setattr(CoalescingWriter, "flush", counted)
    broker = make_broker(amqp_url, prefetch=1)
    await broker.connect()
    try:
        target = await bound_queue(broker, "test.many", "many", auto_delete=False)
        bus = Bus(broker)
        sends.clear()
        await asyncio.gather(*(bus._publish(b"{}", target, "many") for _ in range(300)))
        assert sum(sends) >= 300
        assert len(sends) < 60, f"{len(sends)} sends for 300 publishes"
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            held = await channel.declare_queue("test.many", passive=True)
            assert held.declaration_result.message_count == 300
    finally:
        await broker.stop()
        await remove(amqp_url, queues=["test.many"], exchanges=["test.many"])


async def test_a_confirm_that_never_comes_raises_within_the_bound(amqp_url: str) -> None:
    """The broker never answers a publish (here the path to it stalls; in
    tests/cluster/test_node_loss.py a publish to the cancellations stream just after the
    node leading it left was never confirmed): the publish raises
    `TimeoutError` after `confirm_timeout`, so its handler hands its delivery back and the
    process can drain, instead of waiting for ever."""
    first = urlsplit(amqp_url.split(",")[0])
    proxy = TcpProxy(first.port or 5672, free_port()).start()
    via_proxy = urlunsplit(first._replace(netloc=f"guest:guest@127.0.0.1:{proxy.listen_port}"))
    broker = make_broker(via_proxy, prefetch=1)
    await broker.connect()
    try:
        target = await bound_queue(broker, "test.unconfirmed", "k", auto_delete=True)
        bus = Bus(broker, confirm_timeout=1.0)
        await bus._publish(b"{}", target, "k")  # the path works: confirmed
        proxy.stall()
        started = time.monotonic()
        publish = asyncio.create_task(bus._publish(b"{}", target, "k"))
        done, _ = await asyncio.wait({publish}, timeout=20)
        assert done, "the publish still waits for its confirm after 20 s"
        with pytest.raises(TimeoutError):
            publish.result()
        assert time.monotonic() - started < 5
    finally:
        proxy.restore()  # the connection closes cleanly (a stalled one waits out a timeout)
        await broker.stop()
        proxy.stop()
        await remove(amqp_url, exchanges=["test.unconfirmed"])


async def bound_queue(
    broker: RabbitBroker, name: str, routing_key: str, *, auto_delete: bool
) -> RabbitExchange:
    """A direct exchange `name` and a queue `name` bound to it with `routing_key`."""
    target = RabbitExchange(name, type=ExchangeType.DIRECT, durable=False)
    exchange = await broker.declare_exchange(target)
    queue = await broker.declare_queue(RabbitQueue(name, auto_delete=auto_delete))
    await queue.bind(exchange, routing_key=routing_key)
    return target


async def remove(amqp_url: str, queues: Sequence[str] = (), exchanges: Sequence[str] = ()) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        for exchange in exchanges:
            await channel.exchange_delete(exchange)
