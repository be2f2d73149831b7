"""Batching projector: many events per transaction, each acked only after its commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.db_errors import DatabaseAway, db_retrying, is_transient
from services.status.store import apply_events
from shared.contracts.events import AnyEvent
from shared.errors import PermanentError
from shared.metrics import EVENTS_DUPLICATE, EVENTS_PROJECTED, PROJECTION_LAG

log = logging.getLogger("hybridq.status.projector")
Pending = tuple[AnyEvent, asyncio.Future[None]]


class Projector:
    def __init__(
        self,
        engine: AsyncEngine,
        batch_size: int = 200,
        batch_wait: float = 0.02,
        hold_seconds: float = 240.0,
        on_commit: Callable[[list[AnyEvent]], Awaitable[None]] | None = None,
    ) -> None:
        self.engine = engine
        self.on_commit = on_commit
        self.batch_size = batch_size
        self.batch_wait = batch_wait
        self.hold_seconds = hold_seconds
        self._queue: asyncio.Queue[Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.db_ok = True

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="projector")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def project(self, event: AnyEvent) -> None:
        """Resolve once the event is committed; raise DatabaseAway or PermanentError."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((event, future))
        await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            deadline = time.monotonic() + self.batch_wait
            while len(batch) < self.batch_size:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout))
                except TimeoutError:
                    break
            await self._write(batch)

    async def _write(self, batch: list[Pending]) -> None:
        try:
            async for attempt in db_retrying(self.hold_seconds):
                with attempt:
                    try:
                        fresh = await apply_events(self.engine, [e for e, _ in batch])
                    except Exception as exc:
                        if is_transient(exc):
                            self.db_ok = False
                            log.warning("database away; holding %d events", len(batch))
                        raise
        except Exception as exc:
            if is_transient(exc):
                _settle(batch, DatabaseAway("database away; handing events back"))
            elif len(batch) > 1:  # isolate the poison event; commit the others
                for one in batch:
                    await self._write([one])
            else:
                _settle(batch, PermanentError(f"cannot project event: {exc}"))
            return
        self.db_ok = True
        now = datetime.now(UTC)
        for event in fresh:
            EVENTS_PROJECTED.labels(event.type).inc()
            PROJECTION_LAG.observe(max(0.0, (now - event.occurred_at).total_seconds()))
        EVENTS_DUPLICATE.inc(len(batch) - len(fresh))
        _settle(batch, None)
        if self.on_commit is not None and fresh:
            try:
                await self.on_commit(fresh)
            except Exception:  # the groups sweep catches up; projection goes on
                log.exception("after-commit hook failed")


def _settle(batch: list[Pending], error: Exception | None) -> None:
    for _, future in batch:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
