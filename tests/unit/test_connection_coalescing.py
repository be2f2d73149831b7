"""The AMQP writer sends one turn's frames together (shared/connection.py)."""

from __future__ import annotations

import asyncio

import aiormq.connection

from shared import connection


class Recorder:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
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


def test_aiormq_connections_queue_many_frames() -> None:
    """With aiormq's default (10) every frame leaves on its own (docs/performance.md)."""
    assert aiormq.connection.Connection.FRAME_BUFFER_SIZE == connection.FRAME_QUEUE >= 1000
