"""The bare broker hop: one publisher process, one consumer process, persistent + confirmed.

`python -m bench.hop consume URL N OUT` waits for N messages on the durable queue `hop`
(acking each), then writes each message's receive wall time as JSON to OUT;
`python -m bench.hop publish URL N OUT` publishes N messages, writing their send times.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid

import aio_pika

from bench.publish import Outgoing, publish_all

QUEUE = "hop"


async def consume(url: str, n: int, out: str) -> None:
    received: dict[str, float] = {}
    done = asyncio.Event()
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=200)
        queue = await channel.declare_queue(QUEUE, durable=True)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            at = time.time()
            await message.ack()
            received[message.body.decode()] = at
            if len(received) >= n:
                done.set()

        await queue.consume(on_message)
        print("ready", flush=True)
        await done.wait()
    with open(f"{out}.part", "w") as f:
        json.dump(received, f)
    os.rename(f"{out}.part", out)
    await asyncio.to_thread(sys.stdin.readline)  # stay measurable until the bench is done


async def publish(url: str, n: int, out: str) -> None:
    keys = [uuid.uuid4().hex for _ in range(n)]
    await asyncio.to_thread(sys.stdin.readline)  # the bench says go once it watches
    sent = await publish_all(url, "", [Outgoing(k, QUEUE, k.encode()) for k in keys])
    with open(out, "w") as f:
        json.dump(sent, f)


def main() -> None:
    mode, url, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    asyncio.run(consume(url, n, out) if mode == "consume" else publish(url, n, out))


if __name__ == "__main__":
    main()
