"""The status service's consuming side, on a thread of its own.

The service does two kinds of work: it answers the HTTP API, and it consumes (the event
projection, dead letters, worker heartbeats) and runs its background tasks (outbox and
redrive relays, schedules, leases, sweeps, retention). On one event loop a burst of events
made every API request wait behind hundreds of deliveries: under a full load, reads that
take 10-17 ms on an idle service took 300-1,000 ms at p99 (`make bench` with `--probe`,
docs/performance.md). Here the consuming side runs its own event loop, its own AMQP
connection and its own database pools on a second thread; the API's loop only answers
requests. They share nothing but the process (its metrics, its logs) and the database
and broker every replica shares anyway.

Start-up is synchronous for the caller: `start()` returns once everything consumes, or
raises what stopped it. `stop()` drains in the order the service always did (background
tasks, consumers, projector, pools). If the consuming side ever fails on its own, the
process exits (status 70) so that its supervisor starts a new one: an API without its
projection must not look healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable

from faststream.rabbit import RabbitBroker
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.status import leases, outbox, redrives, workers
from services.status.background import start_background, stop_background
from services.status.consumers import subscribe
from services.status.projector import Projector
from services.status.schedules.firer import Firer
from shared import topology
from shared.bus import Bus, make_broker
from shared.settings import StatusSettings

log = logging.getLogger("hybridq.status.consuming")
RELAY_EVERY_SECONDS = 5.0
FAILED_EXIT = 70  # EX_SOFTWARE


class Consuming:
    """The consuming side of one status replica, run on its own thread."""

    def __init__(
        self, settings: StatusSettings, on_failure: Callable[[], None] | None = None
    ) -> None:
        self.settings = settings
        self.on_failure = on_failure or _exit_process
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._stopping = False

    def start(self, timeout: float = 60.0) -> None:
        """Start consuming; raise what stopped the start-up, if anything did."""
        self._thread = threading.Thread(target=self._run, name="status-consuming", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError(f"the consuming side did not start within {timeout:g} s")
        if self._failure is not None:
            raise self._failure

    def stop(self, timeout: float = 30.0) -> None:
        """Drain and stop (from any thread); returns when the thread has ended."""
        self._stopping = True
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    async def stopped(self, timeout: float = 30.0) -> None:
        """`stop` for an event loop: waits on a worker thread, not on the loop."""
        await asyncio.to_thread(self.stop, timeout)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            if not self._started.is_set():
                self._failure = exc
                self._started.set()
                return
            if not self._stopping:
                log.critical("the consuming side failed; exiting", exc_info=exc)
                self.on_failure()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        settings = self.settings
        # background work and the dead-letter/heartbeat consumers; the API has its own pool
        engine = create_async_engine(settings.database_url, pool_pre_ping=True, pool_size=4)
        # the projection's own pool, without the pre-ping round trip per transaction: a
        # connection lost with the database fails its batch, which is held and retried
        # (db_errors.db_retrying) on a new connection
        projection_engine = create_async_engine(settings.database_url, pool_size=2)
        broker = make_broker(settings.amqp_url, settings.batch_size)
        bus = Bus(broker)
        projector = Projector(
            projection_engine,
            settings.batch_size,
            settings.batch_wait_seconds,
            hold_seconds=settings.db_hold_seconds,
            relay=lambda: outbox.relay(engine, bus),
        )
        kind = settings.work_queue_type
        events = subscribe(broker, bus, projector, engine, settings.db_hold_seconds, kind)
        workers.subscribe(broker, bus, engine, kind)
        try:
            await projector.start()
            await broker.connect()
            await topology.declare(broker, topology.status_bindings(kind))
            await broker.start()
            await events.start()
        except BaseException:
            await _close(broker, projector, engine, projection_engine)
            raise
        background = start_background(engine, bus, settings)
        tasks = [
            asyncio.create_task(
                Firer(engine, bus, settings.schedule_poll_seconds).run(), name="schedule-firer"
            ),
            asyncio.create_task(leases.sweep_forever(engine, bus), name="leases"),
            asyncio.create_task(_relay_redrives(engine, bus), name="redrive-relay"),
        ]
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await stop_background(background)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task  # no publish after the broker stops
            await events.stop()
            await _close(broker, projector, engine, projection_engine)


async def _close(
    broker: RabbitBroker,
    projector: Projector,
    engine: AsyncEngine,
    projection_engine: AsyncEngine,
) -> None:
    await broker.stop()
    await projector.stop()
    await engine.dispose()
    await projection_engine.dispose()


async def _relay_redrives(engine: AsyncEngine, bus: Bus) -> None:
    """Publish claimed redrives whose publish failed (or whose process died) earlier."""
    while True:
        await asyncio.sleep(RELAY_EVERY_SECONDS)
        try:
            await redrives.relay(engine, bus)
        except Exception:  # database away: next round
            log.warning("redrive relay failed; retrying", exc_info=True)


def _exit_process() -> None:
    logging.shutdown()
    os._exit(FAILED_EXIT)
