"""A consumer the broker lost while the connection stayed up is restored: the connection
notices (shared/connection.py, `WATCH_ROUNDS` checks) and reconnects, and aio-pika
restores every channel and consumer. tests/cluster/test_node_loss.py once ended with the
status write side connected and `jobs.status.events` without a consumer for minutes."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from shared import connection as connection_module
from shared.connection import FailoverConnection, connect

pytestmark = pytest.mark.connected


async def test_a_consumer_lost_on_a_live_connection_comes_back(
    amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection_module, "WATCH_SECONDS", 0.2)
    connection = await connect(amqp_url)
    assert isinstance(connection, FailoverConnection)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue("test.watched", auto_delete=False)
        got: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()
            got.put_nowait(message.body)

        tag = await queue.consume(on_message)
        await channel.default_exchange.publish(aio_pika.Message(b"one"), "test.watched")
        assert await asyncio.wait_for(got.get(), 10) == b"one"

        # the broker's channel drops the consumer behind aio-pika's back (what a restore
        # that failed half-way leaves): aio-pika still holds it, nothing is delivered
        underlay = await channel.get_underlay_channel()
        await underlay.basic_cancel(tag)
        assert connection.lost_consumers()
        await channel.default_exchange.publish(aio_pika.Message(b"two"), "test.watched")

        assert await asyncio.wait_for(got.get(), 15) == b"two"  # restored, then delivered
        assert not connection.lost_consumers()
    finally:
        await connection.close()
        cleanup = await aio_pika.connect(amqp_url)
        async with cleanup:
            await (await cleanup.channel()).queue_delete("test.watched")


async def test_a_consumer_cancelled_on_purpose_is_not_restored(amqp_url: str) -> None:
    """A consumer the service cancels itself (a drain) is not a lost one."""
    connection = await connect(amqp_url)
    assert isinstance(connection, FailoverConnection)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue("test.cancelled", auto_delete=False)

        async def ignore(_message: aio_pika.abc.AbstractIncomingMessage) -> None:
            return None

        tag = await queue.consume(ignore, no_ack=True)
        await queue.cancel(tag)
        assert connection.lost_consumers() == set()
        await queue.consume(ignore, no_ack=True)
        await channel.close()
        assert connection.lost_consumers() == set()
    finally:
        await connection.close()
        cleanup = await aio_pika.connect(amqp_url)
        async with cleanup:
            await (await cleanup.channel()).queue_delete("test.cancelled")
