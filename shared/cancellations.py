"""Which jobs have been cancelled: every router and worker process replays the
`jobs.cancellations` stream at start, then follows it live.

The stream (shared/topology.py) is bound to `jobs.events` / `events.status` (the status
service's event batches, which carry its cancellations; `job.cancelled` for a v1.1 status
service during an upgrade) and keeps
CANCELLATIONS_MAX_AGE of them, so a process started after a cancel (a restart, a new
replica, KEDA scaling a worker from zero) still learns it, without database access.

`caught_up()` resolves once the replay has provably reached the present: the process
publishes a unique marker into the same stream (routing key `cancellations.sync`, which
no consumer takes for a cancellation) and waits until it reads that marker back. The
stream is one ordered log, so every cancellation confirmed before the marker was
published lies before it and has been applied by then.

Behind the hybrid link (a public worker on the public broker) a job and its cancellation
travel on different shovels, so a job can reach the worker before a cancellation issued
before it. `settled()` is the barrier the worker passes before each job: its feed sends a
marker round the link (public -> private broker -> back through the same FIFO queue and
shovel as the cancellations) and waits to read it back from the stream; every cancellation
issued before the job left the private broker is then applied. Where no link takes the
marker (unroutable: an ordinary broker) it returns at once (docs/hybrid-link.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from uuid import UUID, uuid4

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustQueue
from faststream.rabbit import RabbitBroker, RabbitQueue
from faststream.rabbit.schemas import Channel
from tenacity import AsyncRetrying, stop_after_delay, wait_exponential

from shared import topology
from shared.bus import Bus
from shared.connection import FailoverConnection
from shared.contracts import batches
from shared.contracts.events import JobCancelled
from shared.identity import WorkerUsers

log = logging.getLogger("hybridq.cancellations")

REMEMBER_SECONDS = 30 * 24 * 3600  # = topology.CANCELLATIONS_MAX_AGE: what a replay holds
MAX_REMEMBERED = 250_000  # ~40 MB; beyond it the oldest are forgotten (logged)
STREAM_PREFETCH = 500  # a stream consumer needs a prefetch; this one sets replay speed
MARKER_WAIT_SECONDS = 15.0  # not read back by then: publish another marker
STREAM_START_SECONDS = 60.0  # how long start-up waits for a stream still coming up
RESUBSCRIBE_SECONDS = 10.0  # bound on cancelling and restarting a stuck stream consumer
UNLINKED_RECHECK_SECONDS = 30.0  # a link barrier marker was unroutable: none until then
BARRIER_SPACING_SECONDS = 0.02
"""Under load, barrier markers leave at most this often: callers that arrive meanwhile wait
for the next one together. Each marker is a stream publish delivered to every router and
worker; one per round trip was about 0.2 published and 0.4 delivered per job in the
bench. Idle, a marker leaves at once (the last one left longer ago than this)."""


class BarrierReleased(Exception):
    """A job's link barrier was given up (shutdown): transient, the job is handed back."""


class Cancellations:
    """Cancelled job ids (from the stream) and the running attempts to stop on cancel."""

    def __init__(self) -> None:
        self._cancelled: OrderedDict[UUID, float] = OrderedDict()
        self._watchers: dict[UUID, list[Callable[[], None]]] = {}
        self._markers: set[str] = set()
        self._caught_up = asyncio.Event()
        self._barrier: Callable[[], Awaitable[None]] | None = None
        self._round_trips: dict[str, list[asyncio.Future[None]]] = {}
        self._barriers: dict[str, asyncio.Future[None]] = {}
        self._link_barrier: Callable[[], Awaitable[bool]] | None = None
        self._held: set[asyncio.Future[None]] = set()
        self._released = False

    def use_barrier(self, barrier: Callable[[], Awaitable[None]]) -> None:
        """What `settled()` awaits on this broker (a feed's stream barrier)."""
        self._barrier = barrier

    def use_link_barrier(self, barrier: Callable[[], Awaitable[bool]]) -> None:
        """What `settled()` tries first behind the hybrid link (a public worker's feed)."""
        self._link_barrier = barrier

    def cancel(self, job_id: UUID, at: datetime | None = None) -> None:
        """Remember `job_id` as cancelled (at `at`, default now) and stop its attempts."""
        self._cancelled[job_id] = at.timestamp() if at else time.time()
        self._cancelled.move_to_end(job_id)
        self._forget_old()
        for stop in self._watchers.pop(job_id, []):
            stop()

    def is_cancelled(self, job_id: UUID) -> bool:
        at = self._cancelled.get(job_id)
        return at is not None and time.time() - at < REMEMBER_SECONDS

    def watch(self, job_id: UUID, task: asyncio.Task[object]) -> None:
        """Cancel `task` if the job is cancelled while it runs (or already was: a cancel
        that arrived between the start check and this call still stops it)."""
        if self.is_cancelled(job_id):
            task.cancel()
            return

        def stop() -> None:
            task.cancel()

        self._watchers.setdefault(job_id, []).append(stop)

    def unwatch(self, job_id: UUID) -> None:
        self._watchers.pop(job_id, None)

    async def caught_up(self) -> None:
        """Resolve once every cancellation published before this process's sync marker
        has been applied (see the module docstring); at once when already so."""
        await self._caught_up.wait()

    async def settled(self) -> None:
        """The barrier a worker passes before its start check: every cancellation confirmed
        before the call has been applied, so a job cancelled before it was taken never
        starts.

        A job taken from a work queue a moment after its cancel was confirmed may reach the
        worker before the cancel reaches it through the stream (two queues, no order
        between them). Behind the hybrid link a marker goes round the link (which also
        proves the local stream is read up to it); elsewhere a marker published after the
        call must come back through the local stream. Without a feed (in-memory tests): at
        once."""
        if self._released:
            raise BarrierReleased("shutting down")
        if self._link_barrier is not None and await self._link_barrier():
            return
        if self._barrier is not None:
            await self._barrier()

    # -- fed by the stream --------------------------------------------------------
    def expect_marker(self, marker: str) -> None:
        self._markers.add(marker)

    def expect_round_trip(self, marker: str, waiters: list[asyncio.Future[None]]) -> None:
        """`waiters` are released when `marker` is read back from the stream."""
        self._round_trips[marker] = waiters

    def drop_round_trip(self, marker: str) -> list[asyncio.Future[None]]:
        """Stop waiting for `marker`; its waiters, not yet released, are returned."""
        return [w for w in self._round_trips.pop(marker, []) if not w.done()]

    def expect_barrier_marker(self, marker: str) -> asyncio.Future[None]:
        """A future resolved when `marker` is read from the stream."""
        seen: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._released:
            seen.set_exception(BarrierReleased("shutting down"))
        self._barriers[marker] = seen
        return seen

    def forget_barrier_marker(self, marker: str) -> None:
        self._barriers.pop(marker, None)

    def release_barriers(self) -> None:
        """Fail every barrier still waiting (on shutdown while the link is cut): its job is
        handed back (transient), not held past the drain."""
        self._released = True
        for seen in self._barriers.values():
            if not seen.done():
                seen.set_exception(BarrierReleased("shutting down while the link is cut"))
        waiting = [w for ws in self._round_trips.values() for w in ws] + [*self._held]
        for waiter in waiting:
            if not waiter.done():
                waiter.set_exception(BarrierReleased("shutting down"))

    def hold(self, waiter: asyncio.Future[None]) -> None:
        """Fail `waiter` on `release_barriers` (or at once after it), whatever it waits for:
        a barrier caller still queued for the next marker is handed back on shutdown too,
        not only one whose marker is out."""
        if self._released:
            waiter.set_exception(BarrierReleased("shutting down"))
            return
        self._held.add(waiter)
        waiter.add_done_callback(self._held.discard)

    def marker_seen(self, marker: str) -> None:
        barrier = self._barriers.pop(marker, None)
        if barrier is not None and not barrier.done():
            barrier.set_result(None)
        if marker in self._markers:
            self._markers.clear()
            self._caught_up.set()
        for waiter in self._round_trips.pop(marker, []):
            if not waiter.done():
                waiter.set_result(None)

    def _forget_old(self) -> None:
        horizon = time.time() - REMEMBER_SECONDS
        while self._cancelled:
            job_id, at = next(iter(self._cancelled.items()))
            if at >= horizon and len(self._cancelled) <= MAX_REMEMBERED:
                return
            if at >= horizon:
                log.warning("too many cancellations remembered: forgetting the oldest")
            del self._cancelled[job_id]


class CancellationFeed:
    """Replays and follows `jobs.cancellations` on the service's own connection.

    Only JobCancelled events published to `jobs.events` with `events.status` (or v1.1's
    `job.cancelled`) by a non-worker user cancel (workers cannot publish those keys at all:
    topic permissions); anything else in
    the stream is a sync marker or ignored. The stream cannot dead-letter, so a bad
    message is logged and skipped (the status service sees the same event anyway).
    """

    def __init__(
        self,
        broker: RabbitBroker,
        bus: Bus,
        cancellations: Cancellations,
        workers: WorkerUsers | None = None,
        *,
        link_barrier: bool = False,
    ) -> None:
        self.broker = broker
        self.bus = bus
        self.cancellations = cancellations
        self.workers = workers or WorkerUsers()
        self._queue: AbstractRobustQueue | None = None
        self._tag: str | None = None
        self._sync: asyncio.Task[None] | None = None
        self._waiting: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._delivered = 0  # messages the stream consumer delivered (a stuck one: none)
        self._silent = 0  # marker waits in a row in which it delivered nothing
        self._barriers: asyncio.Task[None] | None = None
        self._last_marker = float("-inf")  # monotonic time the last barrier marker left
        self._unlinked_until = 0.0
        self._linked_side = link_barrier
        if link_barrier:  # public workers only: the link's far end (module docstring)
            cancellations.use_link_barrier(self._link_barrier)

    async def start(self) -> None:
        """Start the replay (from the first message kept) and the marker round trip.
        Call after the topology is declared; then await `cancellations.caught_up()`."""
        # a queue object of its own (no arguments: passive) so the declarer opens it on
        # the stream's own channel, whose prefetch a stream consumer requires
        async for attempt in AsyncRetrying(
            wait=wait_exponential(multiplier=0.2, max=2),
            stop=stop_after_delay(STREAM_START_SECONDS),
            reraise=True,
        ):
            with attempt:
                await self._consume()
        self._sync = asyncio.create_task(self._round_trip(), name="cancellations-sync")
        self._barriers = asyncio.create_task(self.run_barriers(), name="cancellations-barrier")
        self.cancellations.use_barrier(self.barrier)

    async def _consume(self) -> None:
        """Consume the stream from its first message. Just after a fresh broker declared
        it, a stream can still be starting (`stream_not_found`, the channel or even the
        connection closed): transient, `start` tries again."""
        queue = RabbitQueue(topology.CANCELLATIONS.name, declare=False)
        self._queue = await self.broker.config.declarer.declare_queue(
            queue, channel=Channel(prefetch_count=STREAM_PREFETCH)
        )
        # on a reconnect the robust queue consumes again from `first`: a full replay,
        # so nothing published while the connection was down is missed
        self._tag = await self._queue.consume(
            self._on_message, arguments={"x-stream-offset": "first"}
        )

    async def stop(self) -> None:
        if self._sync is not None:
            self._sync.cancel()
        if self._barriers is not None:
            self._barriers.cancel()
        if self._queue is not None and self._tag is not None:
            if not self._queue.channel.is_closed:
                await self._queue.cancel(self._tag)
            self._tag = None

    async def _round_trip(self) -> None:
        while True:
            marker = uuid4().hex
            self.cancellations.expect_marker(marker)
            try:
                await self.bus.cancellations_marker(marker)
            except Exception:  # broker trouble: transient, try again
                log.warning("sync marker not published; retrying", exc_info=True)
                await asyncio.sleep(1)
                continue
            try:
                await asyncio.wait_for(self.cancellations.caught_up(), MARKER_WAIT_SECONDS)
            except TimeoutError:
                log.info("cancellations replay still running; another sync marker")
                continue
            log.info("cancellations replay caught up")
            return

    async def barrier(self) -> None:
        """Wait for a sync marker published *after* this call to come back through the
        stream: every cancellation confirmed before the call is then applied. Callers that
        arrive while no marker is out share the next one (one round trip per batch)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.cancellations.hold(waiter)  # failed on shutdown, even before its marker is out
        self._waiting.append(waiter)
        self._wake.set()
        await waiter

    async def run_barriers(self) -> None:
        """One marker out at a time (group commit): callers that arrive while a marker is
        out wait for the next one, published once it is back and at least
        BARRIER_SPACING_SECONDS after the one before, so a busy worker sends a marker per
        round trip or per spacing, whichever is longer, not one per job."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            early = self._last_marker + BARRIER_SPACING_SECONDS - time.monotonic()
            if early > 0:  # under load: who arrives meanwhile shares the next marker
                await asyncio.sleep(early)
            batch, self._waiting = self._waiting, []  # every one of them called before...
            if not batch:
                continue
            marker = uuid4().hex
            self.cancellations.expect_round_trip(marker, batch)
            self._last_marker = time.monotonic()
            try:
                await self.bus.cancellations_marker(marker)  # ...this publish
            except Exception:  # broker trouble: the batch waits for the next marker
                log.warning("barrier marker not published; retrying", exc_info=True)
                self._waiting = [*self.cancellations.drop_round_trip(marker), *self._waiting]
                await asyncio.sleep(1)
                self._wake.set()
                continue
            delivered = self._delivered
            _, pending = await asyncio.wait(batch, timeout=MARKER_WAIT_SECONDS)
            if pending:
                if self._delivered == delivered:  # idle, not merely slow (a long replay)
                    await self._restart_consumer()
                self._resend(marker)
            else:
                self._silent = 0

    async def _restart_consumer(self) -> None:
        """The stream consumer delivered nothing while a marker was out: consume again; if
        that did not help either, move the connection to another node (its member of the
        stream may be the one that is stuck: a new consumer there got nothing, not even
        the replay, in tests/cluster/test_node_loss.py)."""
        self._silent += 1
        connection = getattr(self.broker, "connection", None)
        if self._silent % 2 == 0 and isinstance(connection, FailoverConnection):
            await connection.move_on("the cancellations stream delivers nothing")
            return
        await self._resubscribe()

    async def _resubscribe(self) -> None:
        """A marker confirmed by the broker but not read back in MARKER_WAIT_SECONDS, and
        nothing at all delivered meanwhile: the stream consumer is taken as stuck and
        consumes again (from the first message).
        Seen on RabbitMQ 3.10 after the node leading the stream left: the consumer on the
        new connection delivered for a few seconds, then nothing more, while every marker
        was confirmed."""
        queue, tag = self._queue, self._tag
        if queue is None:
            return
        log.warning("cancellations stream consumer delivers nothing: consuming again")
        try:
            if tag is not None and not queue.channel.is_closed:
                await asyncio.wait_for(queue.cancel(tag), RESUBSCRIBE_SECONDS)
            self._tag = await asyncio.wait_for(
                queue.consume(self._on_message, arguments={"x-stream-offset": "first"}),
                RESUBSCRIBE_SECONDS,
            )
        except Exception:  # broker trouble: the next miss tries again
            log.warning("cancellations stream consumer not restarted", exc_info=True)

    def _resend(self, marker: str) -> None:
        """A marker not read back in time (a reconnect replays the stream): a new one."""
        stale = self.cancellations.drop_round_trip(marker)
        if stale:
            self._waiting.extend(stale)
            self._wake.set()

    async def _link_barrier(self) -> bool:
        """A marker round the hybrid link, read back from the stream (module docstring):
        True once it is back. Not routable means no link (False): checked again after
        UNLINKED_RECHECK_SECONDS."""
        if time.monotonic() < self._unlinked_until:
            return False
        while True:
            marker = uuid4().hex
            seen = self.cancellations.expect_barrier_marker(marker)
            try:
                if not await self.bus.link_marker(marker):
                    log.info("no hybrid link takes the barrier marker: none for a while")
                    self._unlinked_until = time.monotonic() + UNLINKED_RECHECK_SECONDS
                    return False
                await asyncio.wait_for(seen, MARKER_WAIT_SECONDS)
                log.info("link barrier passed")
                return True
            except TimeoutError:  # the link is cut: the job waits, held, for it
                log.info("link barrier marker not back yet; another one")
            finally:
                self.cancellations.forget_barrier_marker(marker)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._delivered += 1
        try:
            self._apply(message)
        finally:
            await message.ack()

    def _apply(self, message: AbstractIncomingMessage) -> None:
        # behind the hybrid link, cancellations and barrier markers are put straight into
        # the stream by its shovel (default exchange; docs/hybrid-link.md)
        linked = (
            self._linked_side
            and message.exchange == ""
            and message.routing_key == topology.CANCELLATIONS.name
        )
        if linked and _marker_of(message.body):
            self.cancellations.marker_seen(_marker_of(message.body))
            return
        if not linked and message.exchange != topology.EVENTS.name:
            return
        if message.routing_key == topology.CANCELLATIONS_SYNC_KEY:
            self.cancellations.marker_seen(_marker_of(message.body))
            return
        if not linked and message.routing_key not in CANCELLING_KEYS:
            return
        if self.workers.is_worker(message.user_id):
            log.warning("cancellation published by a worker's user: ignored")
            return
        for event in cancellations_in(message.body):
            self.cancellations.cancel(event.job_id, event.occurred_at)


CANCELLING_KEYS = frozenset({topology.STATUS_EVENTS_KEY, topology.CANCELLED_KEY})
"""The status service's event batches, and a v1.1 status service's single JobCancelled."""


def cancellations_in(body: bytes) -> list[JobCancelled]:
    """The JobCancelled events of a stream message: an event batch (the status service's
    other events in it are not cancellations) or a v1.1 single event. The stream cannot
    dead-letter, so anything unreadable is logged and skipped (the status service, which
    published it, sees the same events on its own queue)."""
    try:
        data = json.loads(body)
    except ValueError:
        log.warning("unreadable message in the cancellations stream: skipped")
        return []
    items = batches.read_items(data)
    if any(isinstance(item, batches.Unreadable) for item in items):
        log.warning("unreadable event in the cancellations stream: skipped")
    return [item for item in items if isinstance(item, JobCancelled)]


def _marker_of(body: bytes) -> str:
    try:
        marker = json.loads(body).get("marker")
    except (ValueError, AttributeError):
        return ""
    return marker if isinstance(marker, str) else ""
