"""Cancellations without a broker: what a stream message means, marker sync, watching,
and who may speak for which site (the router's due check)."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from unittest.mock import AsyncMock, MagicMock

import pytest
from aio_pika.abc import AbstractIncomingMessage
from faststream.rabbit import TestRabbitBroker

from services.router.app import build
from shared import topology
from shared.cancellations import BarrierReleased, CancellationFeed, Cancellations
from shared.connection import FailoverConnection
from shared.contracts.events import JobCancelled, JobProgress, JobSucceeded
from shared.contracts.jobs import Site
from shared.identity import WorkerUsers
from shared.placement.rules import load_rules
from shared.settings import DEFAULT_RULES_FILE, RouterSettings
from tests.unit.capture import capture
from tests.unit.fake_ledger import FakeLedgerStore

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@dataclass
class StreamMessage:
    """The parts of a delivery from the stream that the feed reads."""

    body: bytes
    routing_key: str = topology.CANCELLED_KEY
    exchange: str = topology.EVENTS.name
    user_id: str | None = "hybridq-status"


def feed() -> tuple[CancellationFeed, Cancellations]:
    cancellations = Cancellations()
    return CancellationFeed(MagicMock(), MagicMock(), cancellations), cancellations


def apply(feed: CancellationFeed, message: StreamMessage) -> None:
    feed._apply(cast(AbstractIncomingMessage, message))


def cancelled(job_id: uuid.UUID) -> bytes:
    return JobCancelled(job_id=job_id, reason="stop").model_dump_json().encode()


def test_a_cancellation_from_the_stream_is_remembered() -> None:
    f, cancellations = feed()
    job_id = uuid.uuid4()
    apply(f, StreamMessage(cancelled(job_id)))
    assert cancellations.is_cancelled(job_id)
    assert not cancellations.is_cancelled(uuid.uuid4())


@pytest.mark.parametrize(
    "forged",
    [
        {"routing_key": topology.CANCELLATIONS_SYNC_KEY},
        {"exchange": ""},
        {"user_id": "hybridq-public-worker"},  # a worker's broker user may not cancel
        {"user_id": "hybridq-private-worker"},
    ],
)
def test_only_job_cancelled_on_jobs_events_by_a_non_worker_cancels(forged: dict[str, Any]) -> None:
    f, cancellations = feed()
    honest, other = uuid.uuid4(), uuid.uuid4()
    apply(f, StreamMessage(b"not json"))
    apply(f, StreamMessage(cancelled(other), **forged))
    apply(f, StreamMessage(cancelled(honest)))  # the same message, as the status service
    assert cancellations.is_cancelled(honest)  # the feed does take cancellations
    assert not cancellations.is_cancelled(other)  # asked by UUID, as the feed stores them


async def test_caught_up_waits_for_this_process_marker_only() -> None:
    f, cancellations = feed()
    cancellations.expect_marker("mine")
    waiting = asyncio.create_task(cancellations.caught_up())
    apply(f, StreamMessage(json.dumps({"marker": "another"}).encode(), "cancellations.sync"))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    apply(f, StreamMessage(json.dumps({"marker": "mine"}).encode(), "cancellations.sync"))
    await asyncio.wait_for(waiting, 1)


async def test_a_watched_attempt_is_cancelled_even_if_the_cancel_came_first() -> None:
    cancellations = Cancellations()
    before, during = uuid.uuid4(), uuid.uuid4()
    cancellations.cancel(before)
    tasks = {job_id: asyncio.create_task(asyncio.sleep(10)) for job_id in (before, during)}
    for job_id, task in tasks.items():
        cancellations.watch(job_id, cast(asyncio.Task[object], task))
    cancellations.cancel(during)
    await asyncio.sleep(0)
    assert all(task.cancelled() for task in tasks.values())


def test_cancellations_older_than_the_stream_keeps_are_forgotten() -> None:
    cancellations = Cancellations()
    old, recent = uuid.uuid4(), uuid.uuid4()
    cancellations.cancel(old, datetime.now(UTC) - timedelta(days=31))
    cancellations.cancel(recent, datetime.now(UTC) - timedelta(days=29))
    assert not cancellations.is_cancelled(old)
    assert cancellations.is_cancelled(recent)


def test_worker_users_speak_only_for_their_site() -> None:
    users = WorkerUsers()
    assert users.site_of("hybridq-public-worker") is not None
    assert not users.may_speak_for("hybridq-public-worker", Site.PRIVATE)
    assert users.site_of("hybridq-router") is None
    assert users.site_of("guest") is None
    assert users.site_of(None) is None
    assert not users.may_speak_for(None, Site.PUBLIC)  # anyone can leave user_id out
    assert users.may_speak_for("guest", Site.PRIVATE)


def test_worker_events_are_accepted_only_from_a_worker_of_the_job_site() -> None:
    users = WorkerUsers()
    job_id = uuid.uuid4()
    done = JobSucceeded(
        job_id=job_id, site=Site.PRIVATE, attempt=1, result={}, duration_seconds=1.0
    )
    progress = JobProgress(job_id=job_id, attempt=1, percent=50, message="")
    stop = JobCancelled(job_id=job_id, reason="stop")
    assert users.speaker("hybridq-private-worker").may_report(done, Site.PRIVATE)
    assert not users.speaker("hybridq-public-worker").may_report(done, Site.PRIVATE)  # forged end
    assert not users.speaker("hybridq-public-worker").may_report(progress, Site.PRIVATE)
    assert users.speaker("hybridq-public-worker").may_report(progress, None)  # job not seen yet
    assert not users.speaker(None).may_report(done, Site.PRIVATE)  # user_id left out
    assert users.speaker("guest").may_report(done, Site.PRIVATE)  # development
    assert not users.speaker("hybridq-private-worker").may_report(stop, Site.PRIVATE)
    assert users.speaker("hybridq-status").may_report(stop, Site.PRIVATE)


def placed(site: str) -> bytes:
    body: dict[str, Any] = {"job_id": str(uuid.uuid4()), "job_type": "noop", "site": site}
    return json.dumps(body).encode()


async def test_due_refuses_a_job_parked_by_another_site_worker(tmp_path: Path) -> None:
    router = build(
        RouterSettings(),
        rules=load_rules(DEFAULT_RULES_FILE),
        private_backlog=lambda: 0,
        clock=lambda: NOW,
        ledger_store=FakeLedgerStore(),
    )
    seen = capture(router.broker)
    queue = topology.ROUTER_DUE.name
    async with TestRabbitBroker(router.broker):
        outcome = await router.due.handle(placed("private"), queue, "hybridq-public-worker")
        own = await router.due.handle(placed("public"), queue, "hybridq-public-worker")
        router_own = await router.due.handle(placed("private"), queue, "hybridq-router")
        anonymous = await router.due.handle(placed("private"), queue, None)
    assert (outcome, own, router_own, anonymous) == (
        "forbidden",
        "dispatched",
        "dispatched",
        "forbidden",
    )
    assert [h["x-hybridq-reason"] for _, h in seen.dead_letters] == ["forbidden"] * 2
    assert all("x-hybridq-job-id" not in h for _, h in seen.dead_letters)  # ends no job
    assert [key for key, _, _ in seen.dispatched] == ["public", "private"]
    assert seen.types() == []


class _MarkerBus:
    """Records the sync markers a feed publishes (the stream is simulated by the test)."""

    def __init__(self) -> None:
        self.markers: list[str] = []

    async def cancellations_marker(self, marker: str) -> None:
        self.markers.append(marker)


async def test_the_start_barrier_waits_for_a_marker_published_after_the_call() -> None:
    """A job taken just after its cancel was confirmed must not start before the cancel is
    applied: `settled()` returns only once a marker published after the call came back."""
    cancellations, bus = Cancellations(), _MarkerBus()
    feed = CancellationFeed(None, bus, cancellations)  # type: ignore[arg-type]
    serving = asyncio.create_task(feed.run_barriers())
    cancellations.use_barrier(feed.barrier)  # what feed.start() does
    try:
        first = asyncio.create_task(cancellations.settled())
        await asyncio.sleep(0.01)
        assert len(bus.markers) == 1
        assert not first.done()  # published, not read back yet
        second = asyncio.create_task(cancellations.settled())  # called after marker 1 went out
        await asyncio.sleep(0.01)
        assert len(bus.markers) == 1  # one marker out at a time: the second caller waits
        cancellations.marker_seen(bus.markers[0])
        await asyncio.wait_for(first, 1)
        await asyncio.sleep(0.01)
        assert not second.done()  # marker 1 proves nothing about what came after it
        assert len(bus.markers) == 2
        cancellations.cancel(uuid.uuid4())  # the stream delivers a cancel, then marker 2
        cancellations.marker_seen(bus.markers[1])
        await asyncio.wait_for(second, 1)
    finally:
        serving.cancel()


async def test_without_a_feed_the_barrier_is_free() -> None:
    await asyncio.wait_for(Cancellations().settled(), 1)


async def test_on_shutdown_a_caller_queued_for_the_next_marker_is_handed_back() -> None:
    """A caller that arrived while a marker was out waits for the next one; if that marker
    never goes out (its publish is stuck, or never comes back), shutdown must still fail the
    caller (transient: its job is handed back) rather than leave its delivery unsettled."""
    cancellations, bus = Cancellations(), _MarkerBus()
    feed = CancellationFeed(None, bus, cancellations)  # type: ignore[arg-type]
    serving = asyncio.create_task(feed.run_barriers())
    cancellations.use_barrier(feed.barrier)
    try:
        first = asyncio.create_task(cancellations.settled())
        await asyncio.sleep(0.01)
        queued = asyncio.create_task(cancellations.settled())  # waits behind marker 1
        await asyncio.sleep(0.01)
        assert len(bus.markers) == 1
        assert not first.done()
        assert not queued.done()
        cancellations.release_barriers()
        done, _ = await asyncio.wait({first, queued}, timeout=1)
        assert done == {first, queued}
        for waiter in (first, queued):
            with pytest.raises(BarrierReleased):
                waiter.result()
        with pytest.raises(BarrierReleased):  # and nobody waits after the release
            await asyncio.wait_for(cancellations.settled(), 1)
    finally:
        serving.cancel()


class _StreamQueue:
    """The stream queue a feed consumes: records consumes and cancels; `on_consume` plays
    what the broker delivers to a new consumer."""

    def __init__(self, on_consume: Any) -> None:
        self.consumed: list[dict[str, Any]] = []
        self.cancelled: list[str] = []
        self.on_consume = on_consume
        self.channel = MagicMock(is_closed=False)

    async def consume(self, callback: Any, arguments: dict[str, Any]) -> str:
        self.consumed.append(arguments)
        self.on_consume()
        return f"tag-{len(self.consumed)}"

    async def cancel(self, tag: str) -> None:
        self.cancelled.append(tag)


async def test_a_stream_consumer_that_delivers_nothing_is_restarted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A marker the broker confirmed but the stream consumer never delivers (seen on
    RabbitMQ 3.10 after the node leading the stream left): the feed consumes again from
    the first message, and the replay brings the marker back, so the job starts."""
    monkeypatch.setattr("shared.cancellations.MARKER_WAIT_SECONDS", 0.2)
    cancellations, bus = Cancellations(), _MarkerBus()
    feed = CancellationFeed(None, bus, cancellations)  # type: ignore[arg-type]

    def replay() -> None:  # the new consumer reads the stream from the start
        for marker in bus.markers:
            asyncio.get_running_loop().call_soon(cancellations.marker_seen, marker)

    queue = _StreamQueue(on_consume=lambda: None)
    feed._queue, feed._tag = queue, "tag-0"  # type: ignore[assignment]
    serving = asyncio.create_task(feed.run_barriers())
    cancellations.use_barrier(feed.barrier)
    try:
        waiting = asyncio.create_task(cancellations.settled())
        await asyncio.sleep(0.05)
        assert len(bus.markers) == 1
        assert not waiting.done()  # confirmed, never delivered
        queue.on_consume = replay
        await asyncio.wait_for(waiting, 2)
        assert queue.cancelled == ["tag-0"]
        assert queue.consumed == [{"x-stream-offset": "first"}]
        assert feed._tag == "tag-1"
    finally:
        serving.cancel()


async def test_a_stream_consumer_still_replaying_is_not_restarted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A long replay (the marker is far behind 30 days of cancellations) delivers all the
    while: restarting it from the first message would never let it reach the marker."""
    monkeypatch.setattr("shared.cancellations.MARKER_WAIT_SECONDS", 0.2)
    cancellations, bus = Cancellations(), _MarkerBus()
    feed = CancellationFeed(None, bus, cancellations)  # type: ignore[arg-type]
    queue = _StreamQueue(on_consume=lambda: None)
    feed._queue, feed._tag = queue, "tag-0"  # type: ignore[assignment]
    serving = asyncio.create_task(feed.run_barriers())
    cancellations.use_barrier(feed.barrier)
    replaying = True

    async def replay() -> None:  # old messages keep coming, the marker not yet
        while replaying:
            await feed._on_message(cast(AbstractIncomingMessage, _Acked(cancelled(uuid.uuid4()))))
            await asyncio.sleep(0.02)

    replay_task = asyncio.create_task(replay())
    try:
        waiting = asyncio.create_task(cancellations.settled())
        await asyncio.sleep(0.7)  # three marker waits go by
        assert len(bus.markers) >= 3  # resent, as before
        assert queue.consumed == []  # but never restarted
        replaying = False
        cancellations.marker_seen(bus.markers[-1])
        await asyncio.wait_for(waiting, 2)
    finally:
        replaying = False
        serving.cancel()
        replay_task.cancel()


async def until(condition: Any, timeout: float = 3) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 (polls a mock's state)
            await asyncio.sleep(0.005)


@dataclass
class _Acked(StreamMessage):
    async def ack(self) -> None:
        return None


async def test_a_stream_silent_after_its_consumer_restarted_moves_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In tests/cluster/test_node_loss.py a restarted consumer got nothing either, not even
    the replay: the node's member of the stream was stuck. The next silent wait moves the
    connection to another node (aio-pika restores the consumer there)."""
    monkeypatch.setattr("shared.cancellations.MARKER_WAIT_SECONDS", 0.2)
    connection = MagicMock(spec=FailoverConnection)
    connection.move_on = AsyncMock()
    broker = MagicMock(connection=connection)
    cancellations, bus = Cancellations(), _MarkerBus()
    feed = CancellationFeed(broker, bus, cancellations)  # type: ignore[arg-type]
    queue = _StreamQueue(on_consume=lambda: None)  # silent whatever happens
    feed._queue, feed._tag = queue, "tag-0"  # type: ignore[assignment]
    serving = asyncio.create_task(feed.run_barriers())
    cancellations.use_barrier(feed.barrier)
    try:
        waiting = asyncio.create_task(cancellations.settled())
        await until(lambda: len(queue.consumed) == 1)  # one silent wait: restarted
        connection.move_on.assert_not_awaited()
        await until(lambda: connection.move_on.await_count == 1)  # two: moved on
        assert len(queue.consumed) == 1
        cancellations.marker_seen(bus.markers[-1])  # delivered on the next node
        await asyncio.wait_for(waiting, 2)
    finally:
        serving.cancel()
