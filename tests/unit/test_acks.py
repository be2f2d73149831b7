"""shared/acks.py: one multiple ack per run of settled tags, never past one still in hand."""

from __future__ import annotations

import asyncio
from typing import Any

from faststream.rabbit.message import RabbitMessage

from shared.acks import Acks


class FakeChannel:
    def __init__(self) -> None:
        self.frames: list[tuple[int, bool]] = []
        self.is_closed = False

    async def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.frames.append((delivery_tag, multiple))

    def acked(self) -> set[int]:
        """Every tag the broker would take as acked from these frames."""
        done: set[int] = set()
        for tag, multiple in self.frames:
            done |= set(range(1, tag + 1)) if multiple else {tag}
        return done


class FakeRaw:
    def __init__(self, channel: FakeChannel, tag: int) -> None:
        self.channel = channel
        self.delivery_tag = tag
        self.processed = False
        self.locked = False

    def lock(self) -> None:
        self.locked = True


def delivery(channel: FakeChannel, tag: int) -> Any:
    msg: Any = RabbitMessage.__new__(RabbitMessage)
    msg.raw_message = FakeRaw(channel, tag)
    msg.committed = None
    return msg


async def test_deliveries_settled_together_take_one_multiple_ack() -> None:
    channel, acks = FakeChannel(), Acks()
    await asyncio.gather(*(acks.ack(delivery(channel, t)) for t in (3, 1, 2, 4)))
    assert channel.frames == [(4, True)]


async def test_a_multiple_ack_never_covers_a_delivery_still_in_hand() -> None:
    channel, acks = FakeChannel(), Acks()
    # 3 is still being handled: 1-2 go as one frame, 4-5 one by one at once
    await asyncio.gather(*(acks.ack(delivery(channel, t)) for t in (1, 2, 4, 5)))
    assert 3 not in channel.acked()
    assert channel.acked() == {1, 2, 4, 5}
    await acks.ack(delivery(channel, 3))
    await acks.ack(delivery(channel, 6))
    assert channel.acked() == {1, 2, 3, 4, 5, 6}
    # no single ack of a tag an earlier frame acked (an unknown tag closes the channel)
    for i, (tag, multiple) in enumerate(channel.frames):
        before = FakeChannel()
        before.frames = channel.frames[:i]
        assert multiple or tag not in before.acked(), f"tag {tag} acked twice"


async def test_a_nacked_delivery_lets_the_run_pass() -> None:
    channel, acks = FakeChannel(), Acks()
    await acks.ack(delivery(channel, 1))
    nacked = delivery(channel, 2)  # nacked on its own by settle(), then reported
    acks.settled(nacked)
    await asyncio.gather(*(acks.ack(delivery(channel, t)) for t in (3, 4)))
    assert channel.frames[-1] == (4, True)
    assert 2 in channel.acked()  # the broker ignores a multiple ack's settled tags


async def test_the_ack_is_recorded_once_for_faststream_and_aio_pika() -> None:
    channel, acks = FakeChannel(), Acks()
    msg = delivery(channel, 1)
    await acks.ack(msg)
    assert msg.committed is not None
    assert msg.raw_message.locked
