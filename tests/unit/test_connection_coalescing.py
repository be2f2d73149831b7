"""The AMQP writer sends one turn's frames together (shared/connection.py)."""

from __future__ import annotations

import asyncio

import aiormq.connection

from shared import connection


class Transport:
    def __init__(self) -> None:
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing


class Recorder:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False
        self.transport = Transport()

    def write(self, data: bytes) -> None:
        if self.transport.closing:  # as uvloop's transport does
            raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")
        self.sent.append(data)

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True


async def test_frames_written_in_one_turn_leave_in_one_send_in_order() -> None:
    inner = Recorder()
    writer = connection.CoalescingWriter(inner)  # type: ignore[arg-type]
    for frame in (b"a", b"b", b"c"):
        writer.write(frame)
    await writer.drain()  # aiormq drains after a frame: that alone sends nothing
    assert inner.sent == []
    await asyncio.sleep(0)  # the end of the turn
    assert inner.sent == [b"abc"]
    writer.write(b"d")
    writer.close()  # closing sends what is pending first
    assert inner.sent == [b"abc", b"d"]
    assert inner.closed


async def test_frames_of_a_turn_in_which_the_connection_was_lost_go_nowhere() -> None:
    """Lost with frames pending: nothing raises in the loop's callback (aio-pika reconnects;
    aiormq fails what waited on those frames)."""
    unhandled: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: unhandled.append(context))
    try:
        inner = Recorder()
        writer = connection.CoalescingWriter(inner)  # type: ignore[arg-type]
        writer.write(b"frame")
        inner.transport.closing = True  # the peer went away in this turn
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert unhandled == []
    assert inner.sent == []


def test_aiormq_connections_queue_many_frames() -> None:
    """With aiormq's default (10) every frame leaves on its own (docs/performance.md)."""
    assert aiormq.connection.Connection.FRAME_BUFFER_SIZE == connection.FRAME_QUEUE >= 1000
