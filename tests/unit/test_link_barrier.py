"""The public worker's barrier behind the hybrid link (shared/cancellations.py): a job waits
until a marker sent round the link comes back; without a link it does not wait at all; on
shutdown a waiting job is handed back. The real round trip (and the race it wins) is
tests/cluster/test_link.py."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from shared.bus import Bus
from shared.cancellations import BarrierReleased, CancellationFeed, Cancellations


class FakeBus:
    """Publishes link markers; `linked` decides whether one is routable, and a routed one
    comes back (is read from the stream) only when `deliver` is called."""

    def __init__(self, cancellations: Cancellations, *, linked: bool) -> None:
        self.cancellations = cancellations
        self.linked = linked
        self.sent: list[str] = []

    async def link_marker(self, marker: str) -> bool:
        self.sent.append(marker)
        return self.linked

    def deliver(self) -> None:
        for marker in self.sent:
            self.cancellations.marker_seen(marker)


def feed(linked: bool) -> tuple[Cancellations, FakeBus]:
    cancellations = Cancellations()
    bus = FakeBus(cancellations, linked=linked)
    CancellationFeed(cast(Any, None), cast(Bus, bus), cancellations, link_barrier=True)
    return cancellations, bus


async def test_without_a_feed_a_job_does_not_wait() -> None:
    await asyncio.wait_for(Cancellations().settled(), 1)


async def test_without_a_link_a_job_does_not_wait_and_no_marker_is_sent_for_a_while() -> None:
    cancellations, bus = feed(linked=False)
    await asyncio.wait_for(cancellations.settled(), 1)
    await asyncio.wait_for(cancellations.settled(), 1)
    assert len(bus.sent) == 1  # unroutable once: no link, checked again later


async def test_behind_the_link_a_job_waits_for_its_marker() -> None:
    cancellations, bus = feed(linked=True)
    waiting = asyncio.create_task(cancellations.settled())
    await asyncio.sleep(0.05)
    assert not waiting.done()  # the marker has not come back round the link
    bus.deliver()
    await asyncio.wait_for(waiting, 1)


async def test_on_shutdown_a_waiting_job_is_handed_back() -> None:
    cancellations, _ = feed(linked=True)
    waiting = asyncio.create_task(cancellations.settled())
    await asyncio.sleep(0.05)
    cancellations.release_barriers()
    with pytest.raises(BarrierReleased):
        await asyncio.wait_for(waiting, 1)
    with pytest.raises(BarrierReleased):  # and none waits after that
        await asyncio.wait_for(cancellations.settled(), 1)
