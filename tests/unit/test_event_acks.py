"""`consumers.Acks`: the event consumer's acks, several deliveries to one `basic.ack`."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import ChannelInvalidStateError

from services.status.consumers import Acks


class Delivery:
    """An aio-pika delivery stand-in that records how it was settled on its channel;
    `written` (when given) holds its frames until set, as a full write queue would."""

    def __init__(
        self, channel: list[tuple[str, int, bool]], tag: int, written: asyncio.Event | None = None
    ) -> None:
        self.channel = channel
        self.delivery_tag = tag
        self.written = written

    async def ack(self, multiple: bool = False) -> None:
        if self.written:
            await self.written.wait()
        self.channel.append(("ack", self.delivery_tag, multiple))

    async def nack(self, requeue: bool = True) -> None:
        if self.written:
            await self.written.wait()
        self.channel.append(("nack", self.delivery_tag, False))


def deliveries(acks: Acks, channel: list[Any], tags: range) -> list[AbstractIncomingMessage]:
    got = [cast(AbstractIncomingMessage, Delivery(channel, t)) for t in tags]
    for message in got:
        acks.received(message)
    return got


async def turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_settled_batch_is_one_ack_with_multiple() -> None:
    acks, channel = Acks(), []
    batch = deliveries(acks, channel, range(1, 51))
    for message in batch:
        await acks.ack(message)
    await turns()
    assert channel == [("ack", 50, True)]


async def test_deliveries_behind_an_unsettled_one_are_acked_alone_and_it_later() -> None:
    acks, channel = Acks(), []
    one, two, three, four, five = deliveries(acks, channel, range(1, 6))
    for message in (one, two, four):
        await acks.ack(message)
    await turns()
    # 3 is still being projected: a multiple ack of 4 would settle it too
    assert channel == [("ack", 2, True), ("ack", 4, False)]
    await acks.hand_back(five)  # at once, for that delivery alone
    assert channel[-1] == ("nack", 5, False)
    await acks.ack(three)
    await turns()
    assert channel[-1] == ("ack", 3, True)
    assert len(channel) == 4


async def test_a_new_channel_forgets_the_deliveries_of_the_old_one() -> None:
    acks, old, new = Acks(), [], []
    [stale] = deliveries(acks, old, range(7, 8))
    [fresh] = deliveries(acks, new, range(1, 2))  # a reconnection: tags start again
    await acks.ack(stale)  # sent as it is (the broker has already put it back)
    await acks.ack(fresh)
    await turns()
    assert old == [("ack", 7, False)]
    assert new == [("ack", 1, True)]


async def test_sent_waits_for_the_acks_already_due() -> None:
    acks, channel = Acks(), []
    [message] = deliveries(acks, channel, range(1, 2))
    await acks.ack(message)
    await acks.sent()  # no turn has passed: sent() sends them itself
    assert channel == [("ack", 1, True)]


async def test_a_multiple_ack_never_overtakes_a_hand_back_still_being_written() -> None:
    acks, channel = Acks(), []
    one, three = deliveries(acks, channel, range(1, 2))[0], None
    slow = asyncio.Event()
    two = cast(AbstractIncomingMessage, Delivery(channel, 2, written=slow))
    acks.received(two)
    [three] = deliveries(acks, channel, range(3, 4))
    await acks.ack(one)
    handing_back = asyncio.create_task(acks.hand_back(two))
    await turns()
    await acks.ack(three)
    await turns()
    # 2 is not yet handed back on the wire: an ack(3, multiple) now would take it off the
    # queue unprojected; 3 goes alone
    assert channel == [("ack", 1, True), ("ack", 3, False)]
    slow.set()
    await handing_back
    assert channel[-1] == ("nack", 2, False)


async def test_a_delivery_of_a_closed_channel_is_not_taken() -> None:
    class Closed:
        delivery_tag = 1

        @property
        def channel(self) -> object:
            raise ChannelInvalidStateError

    assert Acks().received(cast(AbstractIncomingMessage, Closed())) is False


async def test_acks_stuck_on_a_dead_channel_do_not_hold_up_the_new_one() -> None:
    acks, old, new = Acks(), [], []
    never = asyncio.Event()
    stuck = cast(AbstractIncomingMessage, Delivery(old, 1, written=never))
    acks.received(stuck)
    await acks.ack(stuck)
    await turns()  # its ack is waiting to be written, for ever
    [fresh] = deliveries(acks, new, range(1, 2))  # a reconnection
    await acks.ack(fresh)
    await turns()
    assert new == [("ack", 1, True)]
    assert old == []
    never.set()  # let the stuck task end with the test
    await turns()
