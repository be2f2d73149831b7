"""Live queue depths read from the broker with passive declares (no management API).

The management API's statistics are sampled every few seconds; a passive `queue.declare`
answers with the exact ready count now. A background task refreshes the readings so the
value a caller sees is never older than `max_age` seconds, with no round trip per message.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import aiormq
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from shared.connection import connect
from shared.tasks import cancel_and_wait

log = logging.getLogger("hybridq.queue_depth")


@dataclass(frozen=True)
class Depth:
    ready: int
    consumers: int


class QueueDepths:
    def __init__(self, amqp_url: str, queues: list[str], max_age: float = 0.5) -> None:
        self.amqp_url = amqp_url
        self.queues = queues
        self.max_age = max_age
        self.readings: dict[str, Depth] = {}
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._connection = await connect(self.amqp_url)
        await self.refresh()
        self._task = asyncio.create_task(self._loop(), name="queue-depths")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        if self._connection:
            await self._connection.close()

    async def refresh(self) -> None:
        assert self._connection is not None
        for name in self.queues:
            if self._channel is None or self._channel.is_closed:
                self._channel = await self._connection.channel()
            try:
                # aiormq directly: aio-pika's robust channel answers a repeated passive
                # declare from its cache, with the counts of the first one.
                underlay = await self._channel.get_underlay_channel()
                result = await underlay.queue_declare(name, passive=True)
            except aiormq.exceptions.ChannelClosed:
                self._channel = None  # the queue does not exist (yet)
                continue
            self.readings[name] = Depth(result.message_count or 0, result.consumer_count or 0)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.max_age / 2)
            try:
                await self.refresh()
            except Exception:  # the broker is away: the last readings stay until it is back
                log.warning("queue depth refresh failed", exc_info=True)
                await asyncio.sleep(1)

    def ready(self, queue: str) -> int:
        """Ready messages on `queue` (0 if it was never seen)."""
        depth = self.readings.get(queue)
        return depth.ready if depth else 0
