"""Live queue depths read from the broker with passive declares (no management API).

The management API's statistics are sampled every few seconds; a passive `queue.declare`
answers with the exact ready count now. A background task refreshes the readings so the
value a caller sees is never older than `max_age` seconds, with no round trip per message.

With `idle_after`, the readings are refreshed only while someone asks for them
(`current`): a status API nobody reads sends the broker nothing (it was one passive
declare per queue four times a second, for ever). The first ask after a quiet spell
refreshes before it answers, bounded by `max_age` (the broker away: the last readings).
"""

from __future__ import annotations

import asyncio
import logging
import time
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
    def __init__(
        self,
        amqp_url: str,
        queues: list[str],
        max_age: float = 0.5,
        idle_after: float | None = None,
    ) -> None:
        self.amqp_url = amqp_url
        self.queues = queues
        self.max_age = max_age
        self.idle_after = idle_after
        self.readings: dict[str, Depth] = {}
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._task: asyncio.Task[None] | None = None
        self._asked = time.monotonic()
        self._refreshed = 0.0  # when the readings' refresh began
        self._wanted = asyncio.Event()
        self._refreshing: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self) -> None:
        self._connection = await connect(self.amqp_url)
        await self.refresh()
        self._task = asyncio.create_task(self._loop(), name="queue-depths")

    async def current(self) -> dict[str, Depth]:
        """The readings, at most `max_age` old while the broker answers (with
        `idle_after`: the ask keeps them refreshed, and refreshes them first after a quiet
        spell)."""
        self._asked = time.monotonic()
        self._wanted.set()
        if self._task is not None and time.monotonic() - self._refreshed > self.max_age:
            try:  # shielded: a caller that gives up does not cancel others' refresh
                await asyncio.wait_for(asyncio.shield(self._refresh_once()), self.max_age)
            except Exception:  # the broker slow or away: the last readings
                log.debug("queue depths not refreshed in time", exc_info=True)
        return self.readings

    async def stop(self) -> None:
        task, self._task = self._task, None  # current() starts no refresh from now on
        refreshing = self._refreshing
        running = refreshing if refreshing is not None and not refreshing.done() else None
        await cancel_and_wait([task, running])
        if self._connection:
            await self._connection.close()

    def _refresh_once(self) -> asyncio.Task[None]:
        """The refresh under way, or a new one: never two at once (each could open the
        channel again)."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self.refresh(), name="queue-depths-refresh")
        return self._refreshing

    async def refresh(self) -> None:
        assert self._connection is not None
        began = time.monotonic()
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
        self._refreshed = max(self._refreshed, began)

    async def _loop(self) -> None:
        while True:
            if self.idle_after is not None and time.monotonic() - self._asked > self.idle_after:
                self._wanted.clear()  # nobody asks: no round trips until someone does
                await self._wanted.wait()
            await asyncio.sleep(self.max_age / 2)
            try:
                await asyncio.shield(self._refresh_once())
            except Exception as exc:  # the broker is away: the last readings stay meanwhile
                # said once per outage (the connection says when it is back), not per try
                level = logging.DEBUG if self._failing else logging.WARNING
                log.log(level, "queue depth refresh failed: %s: %s", type(exc).__name__, exc)
                self._failing = True
                await asyncio.sleep(1)
            else:
                self._failing = False

    def ready(self, queue: str) -> int:
        """Ready messages on `queue` (0 if it was never seen)."""
        depth = self.readings.get(queue)
        return depth.ready if depth else 0
