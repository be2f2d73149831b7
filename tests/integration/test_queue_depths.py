"""Live queue depths (shared/queue_depth.py) on the real broker: fresh while asked for,
no round trips to the broker while nobody asks (`idle_after`)."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from shared.queue_depth import QueueDepths

pytestmark = pytest.mark.connected

QUEUE = "test.depths"


async def publish(amqp_url: str, n: int) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(QUEUE, durable=False)
        for _ in range(n):
            await channel.default_exchange.publish(aio_pika.Message(b"{}"), routing_key=QUEUE)


class Counted(QueueDepths):
    """Counts its refreshes: each is one passive declare per queue on the broker."""

    refreshes = 0

    async def refresh(self) -> None:
        self.refreshes += 1
        await super().refresh()


async def test_nobody_asking_sends_nothing_and_the_next_ask_is_fresh(amqp_url: str) -> None:
    await publish(amqp_url, 3)
    depths = Counted(amqp_url, [QUEUE], max_age=0.2, idle_after=0.5)
    await depths.start()
    try:
        assert (await depths.current())[QUEUE].ready == 3
        await asyncio.sleep(1.0)  # past idle_after: the loop has gone quiet
        quiet = depths.refreshes
        await asyncio.sleep(1.0)  # four refresh periods
        assert depths.refreshes == quiet, "the broker was asked while nobody asked"
        await publish(amqp_url, 2)
        # the first ask after the quiet spell does not get the old reading (3)
        assert (await depths.current())[QUEUE].ready == 5
        asked = depths.refreshes
        for _ in range(5):  # asked for: kept fresh in the background again
            await asyncio.sleep(0.2)
            await depths.current()
        assert depths.refreshes >= asked + 3
    finally:
        await depths.stop()


async def test_without_idle_after_the_readings_are_always_refreshed(amqp_url: str) -> None:
    """The router's mode: placement reads `ready()` synchronously, so it never idles."""
    await publish(amqp_url, 0)
    depths = Counted(amqp_url, [QUEUE], max_age=0.2)
    await depths.start()
    try:
        before = depths.refreshes
        await asyncio.sleep(1.0)
        assert depths.refreshes >= before + 3
    finally:
        await depths.stop()
