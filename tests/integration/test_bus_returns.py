"""Mandatory publishes fail loudly: a message no queue takes is an error, not a confirm."""

from __future__ import annotations

import aio_pika
import pytest
from aio_pika.exceptions import DeliveryError
from faststream.rabbit import ExchangeType, RabbitExchange, RabbitQueue

from shared.bus import Bus, make_broker

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
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            await channel.exchange_delete("test.nowhere")
