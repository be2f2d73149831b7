"""The one load generator every system gets: persistent, confirmed, pipelined publishes.

Each system is fed by the same aio-pika code, with up to `window` publishes awaiting their
confirm at once, so the sender is not what is measured (a peer's own one-by-one confirmed
client would be: Dramatiq's measured ~1,000 jobs/s in issue 9 was bound by it).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aio_pika


@dataclass(frozen=True)
class Outgoing:
    key: str  # the job/task/message id the run looks up afterwards
    routing_key: str
    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)


async def publish_all(
    amqp_url: str,
    exchange: str,
    messages: list[Outgoing],
    window: int = 500,
    rate: float | None = None,
) -> dict[str, float]:
    """Publish every message (mandatory, persistent, confirmed); returns key -> wall time
    at which its publish was sent. With `rate`, message i is sent at start + i / rate."""
    sent: dict[str, float] = {}
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(exchange) if exchange else channel.default_exchange
        slots = asyncio.Semaphore(window)

        start = time.monotonic()

        async def one(i: int, m: Outgoing) -> None:
            if rate:
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            async with slots:
                sent[m.key] = time.time()
                await target.publish(
                    aio_pika.Message(
                        m.body,
                        headers=m.headers or None,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        **m.properties,
                    ),
                    routing_key=m.routing_key,
                    mandatory=True,
                )

        await asyncio.gather(*(one(i, m) for i, m in enumerate(messages)))
    return sent
