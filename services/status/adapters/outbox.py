"""The outbox relay: publishes what committed transactions queued, then marks it sent.

Every replica relays. Rows are taken in order with `FOR UPDATE SKIP LOCKED` (replicas relay
different rows), published (persistent, confirmed, mandatory: shared/bus.py), and marked
sent in the same transaction that locked them. A crash after a publish and before that
commit publishes the row again later, which is harmless: every message in the outbox is
idempotent where it lands (deterministic job ids for submissions, event ids for events, a
dispatch key for the router's due consumer and the worker's de-duplication of attempts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.adapters.tables import outbox
from shared.bus import Bus
from shared.messages import Envelope
from shared.metrics import OUTBOX_PUBLISHED

log = logging.getLogger("hybridq.status.outbox")
BATCH = 100
UNSENT = outbox.c.sent_at.is_(None)


def _envelope(row: Any) -> Envelope:
    return Envelope(
        exchange=row.exchange,
        routing_key=row.routing_key,
        body=row.body,
        message_id=row.message_id,
        priority=row.priority,
        headers=row.headers,
        expiration=row.expiration,
    )


class Relay:
    """Publishes the outbox: at once when woken (after a commit that queued messages) and
    every `poll_seconds` (what a failed publish or a dead replica left)."""

    def __init__(self, engine: AsyncEngine, bus: Bus, poll_seconds: float = 1.0) -> None:
        self.engine = engine
        self.bus = bus
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception:  # database or broker away: the next round tries again
                log.warning("outbox relay round failed; trying again", exc_info=True)

    async def publish_pending(self) -> int:
        """Publish unsent rows until none is left; returns how many were published."""
        total = 0
        while True:
            sent, taken = await self._round(None)
            total += sent
            if taken < BATCH or sent < taken:
                return total

    async def publish(self, rows: Sequence[int], timeout: float) -> bool:
        """Publish these rows now (a request waits for its own messages): True once every
        one is sent, by this relay or another replica's, within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        async with asyncio.timeout(timeout):
            await self._round(list(rows))
        while not await self._all_sent(rows):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def _round(self, rows: list[int] | None) -> tuple[int, int]:
        query = select(outbox).where(UNSENT).order_by(outbox.c.seq).limit(BATCH)
        if rows is not None:
            query = query.where(outbox.c.seq.in_(rows))
        async with self.engine.begin() as conn:
            taken = (await conn.execute(query.with_for_update(skip_locked=True))).all()
            if not taken:
                return 0, 0
            results = await asyncio.gather(
                *(self.bus.send(_envelope(row)) for row in taken), return_exceptions=True
            )
            sent = [row.seq for row, r in zip(taken, results, strict=True) if r is None]
            failed = [r for r in results if isinstance(r, BaseException)]
            if sent:
                await conn.execute(
                    update(outbox).where(outbox.c.seq.in_(sent)).values(sent_at=func.now())
                )
        for row, result in zip(taken, results, strict=True):
            if result is None:
                OUTBOX_PUBLISHED.labels((row.origin or "other").split(":")[0]).inc()
        if failed:
            log.warning(
                "outbox: %d of %d messages not published; they stay queued",
                len(failed),
                len(taken),
                exc_info=failed[0],
            )
        return len(sent), len(taken)

    async def _all_sent(self, rows: Sequence[int]) -> bool:
        async with self.engine.connect() as conn:
            pending = await conn.scalar(
                select(exists().where(outbox.c.seq.in_(list(rows)), UNSENT))
            )
        return not pending
