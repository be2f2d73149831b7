"""Batching projector: many events per transaction, each acked only after its commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from services.status.adapters.db_errors import (
    HOLD_SECONDS,
    DatabaseAway,
    db_retrying,
    is_transient,
)
from services.status.domain.arrivals import Arrival, Outcome
from services.status.service_layer.projecting import project
from services.status.service_layer.unit_of_work import UnitOfWorkFactory
from shared.errors import PermanentError
from shared.metrics import EVENTS_DUPLICATE, EVENTS_PROJECTED, PROJECTION_LAG
from shared.tasks import cancel_and_wait

log = logging.getLogger("hybridq.status.projector")
Pending = tuple[Arrival, asyncio.Future[Outcome]]


class Projector:
    def __init__(
        self,
        units: UnitOfWorkFactory,
        batch_size: int = 200,
        batch_wait: float = 0.02,
        hold_seconds: float = HOLD_SECONDS,
    ) -> None:
        """`units`: one transaction per batch (a commit that queued compensations wakes
        the outbox relay)."""
        self.units = units
        self.batch_size = batch_size
        self.batch_wait = batch_wait
        self.hold_seconds = hold_seconds
        self._queue: asyncio.Queue[Pending] = asyncio.Queue()
        self._full = asyncio.Event()  # a whole batch is waiting: stop waiting for more
        self._task: asyncio.Task[None] | None = None
        self.db_ok = True

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="projector")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])

    async def project(self, arrival: Arrival) -> Outcome:
        """Resolve once the event is committed (or refused); raise DatabaseAway (hand it
        back) or PermanentError (the event's own fault: dead-letter it)."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((arrival, future))
        if self._queue.qsize() >= self.batch_size - 1:
            self._full.set()
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._queue.qsize() < self.batch_size - 1:  # wait a moment for more
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.batch_wait):
                        await self._full.wait()
            while len(batch) < self.batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._write(batch)

    async def _write(self, batch: list[Pending]) -> None:
        try:
            async for attempt in db_retrying(self.hold_seconds):
                with attempt:
                    try:
                        async with self.units() as uow:
                            outcomes = await project(uow, [a for a, _ in batch])
                    except Exception as exc:
                        if is_transient(exc):
                            self.db_ok = False
                            log.warning("database away; holding %d events", len(batch))
                        raise
        except Exception as exc:
            if is_transient(exc):
                log.warning("database away past the hold; handing %d events back", len(batch))
                _settle(batch, DatabaseAway("database away; handing events back"))
            elif len(batch) > 1:  # isolate the poison event; commit the others
                for one in batch:
                    await self._write([one])
            else:
                _settle(batch, PermanentError(f"cannot project event: {exc}"))
            return
        self.db_ok = True
        now = datetime.now(UTC)
        for (arrival, future), outcome in zip(batch, outcomes, strict=True):
            if outcome is Outcome.PROJECTED:
                EVENTS_PROJECTED.labels(arrival.event.type).inc()
                lag = (now - arrival.event.occurred_at).total_seconds()
                PROJECTION_LAG.observe(max(0.0, lag))
            elif outcome is Outcome.DUPLICATE:
                EVENTS_DUPLICATE.inc()
            if not future.done():
                future.set_result(outcome)


def _settle(batch: list[Pending], error: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
