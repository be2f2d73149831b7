"""Acks several deliveries of a channel in one frame (`basic.ack` with `multiple=True`).

A consumer whose deliveries settle together (the router's intake: a batch of claims, one
event batch and the dispatches, all confirmed together) would send one `basic.ack` frame
per delivery. `Acks` gathers the acks of one event-loop turn per channel and sends, for the
longest run of settled delivery tags just above what the channel has acked so far, one
`basic.ack` of the run's highest tag with `multiple=True`; the broker acks every unacked
delivery up to it. A multiple ack never covers a delivery still in hand: the run stops at
the first tag that is not settled, whether the delivery is still being handled or was
never seen here (another consumer's on the same channel). An ack beyond that gap is sent
on its own at once, so nothing waits for a slow neighbour. A nack or reject is always sent
on its own (`settled`, after it, lets a later run pass over its tag).

An ack is sent only when the handler calls `ack`, i.e. after it has had every publish it
depends on confirmed; `ack` returns once the frame is written, as `message.ack()` does.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field

from aiormq.abc import AbstractChannel
from faststream.message import StreamMessage
from faststream.rabbit.message import RabbitMessage

MAX_TRACKED = 4096
"""Settled tags remembered above a gap the run cannot pass (a delivery never seen here, so
never known to be settled): beyond that many, the channel's acks go one by one."""


@dataclass
class _Channel:
    acked: int = 0  # every delivery tag up to this one is settled on the broker
    settled: set[int] = field(default_factory=set)  # settled above `acked` (one by one)
    queued: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)
    one_by_one: bool = False  # too many tags above a gap: multiple acks given up
    flushing: bool = False
    sending: asyncio.Future[None] | None = None  # the previous turn's frames, written first


class Acks:
    """One per consumer process, for every subscriber of its channels: `ack` a delivery
    (or nack/reject it as usual, then call `settled`)."""

    def __init__(self) -> None:
        self._channels: weakref.WeakKeyDictionary[AbstractChannel, _Channel] = (
            weakref.WeakKeyDictionary()
        )

    def settled(self, msg: RabbitMessage) -> None:
        """The delivery was nacked or rejected on its own: a later run may pass its tag."""
        raw = msg.raw_message
        tag = raw.delivery_tag
        try:
            state = self._channels.get(raw.channel)
        except Exception:  # a closed channel: nothing of it will be acked again
            return
        if state is not None and tag and tag > state.acked:
            state.settled.add(tag)
            _advance(state)

    async def ack(self, msg: RabbitMessage) -> None:
        """Ack the delivery, together with whatever else of its channel settles this turn;
        returns once the frame is written (raises as `message.ack()` would)."""
        raw = msg.raw_message
        tag = raw.delivery_tag
        if raw.processed or raw.locked or not tag or raw.channel.is_closed:
            await msg.ack()  # settled already, or a no-ack delivery: as FastStream's ack
            return
        channel = raw.channel
        await StreamMessage.ack(msg)  # FastStream's record: settled once
        raw.lock()  # aio-pika's: a later message.ack() is a no-op, as after its own ack
        state = self._channels.get(channel)
        if state is None:
            state = self._channels[channel] = _Channel()
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        state.queued.append((tag, written))
        if not state.flushing:
            state.flushing = True
            asyncio.get_running_loop().call_soon(self._flush, channel, state)
        await written

    def _flush(self, channel: AbstractChannel, state: _Channel) -> None:
        """The acks of one turn: the run above `acked` in one frame, the rest one by one.
        The state moves on before any frame is written, so a later turn's run starts
        where this one ends."""
        state.flushing = False
        queued, state.queued = state.queued, []
        ready = {tag for tag, _ in queued}
        before = top = state.acked
        if not state.one_by_one:
            while top + 1 in ready or top + 1 in state.settled:
                top += 1
        run = top if any(before < t <= top for t in ready) else None
        alone = sorted(t for t in ready if t > top)
        state.acked = top
        state.settled.update(alone)
        _advance(state)
        waiting = [w for _, w in queued]
        state.sending = asyncio.ensure_future(_send(channel, state.sending, run, alone, waiting))
        state.sending.add_done_callback(_retrieved)


async def _send(
    channel: AbstractChannel,
    previous: asyncio.Future[None] | None,
    run: int | None,
    alone: list[int],
    waiting: list[asyncio.Future[None]],
) -> None:
    """Write one turn's frames after the previous turn's: an ack of a tag a multiple ack
    already covered would be an unknown delivery tag, which closes the channel."""
    if previous is not None and not previous.done():
        await asyncio.wait([previous])
    error: Exception | None = None
    try:
        if run is not None:
            await channel.basic_ack(run, multiple=True)
        for tag in alone:
            await channel.basic_ack(tag)
    except Exception as exc:  # a closed channel: the broker hands the deliveries back
        error = exc
    for written in waiting:
        if written.done():
            continue
        if error is None:
            written.set_result(None)
        else:
            written.set_exception(error)


def _advance(state: _Channel) -> None:
    while state.acked + 1 in state.settled:
        state.acked += 1
        state.settled.discard(state.acked)
    if state.settled and min(state.settled) <= state.acked:
        state.settled = {t for t in state.settled if t > state.acked}
    if len(state.settled) > MAX_TRACKED:
        state.one_by_one = True
        state.settled.clear()


def _retrieved(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()
