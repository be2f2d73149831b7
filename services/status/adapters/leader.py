"""Leadership across status replicas: a Postgres session advisory lock held on one connection.

Background tasks that must run once across replicas (group sweep, retention) run only while
this replica holds the lock. Postgres releases a session lock when its connection ends, so
a leader that dies (kill -9, lost network) frees it, and another replica takes it on its
next try; nothing about leadership lives in a process's memory beyond its own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger("hybridq.status.leader")
LOCK_KEY = 0x6879627271  # "hybrq": one key per database, one leader among status replicas


class Leadership:
    def __init__(self, engine: AsyncEngine, retry_seconds: float = 2.0, key: int = LOCK_KEY):
        self.engine = engine
        self.retry_seconds = retry_seconds
        self.key = key
        self._conn: AsyncConnection | None = None
        self._lock = asyncio.Lock()  # several loops share the one lock connection

    async def check(self) -> bool:
        """Still (or now) the leader? Verifies the lock's connection, else tries to take it."""
        async with self._lock:
            return await self._check()

    async def _check(self) -> bool:
        if self._conn is not None:
            try:
                await self._conn.execute(text("SELECT 1"))
                return True
            except Exception:
                log.warning("lost the leadership connection", exc_info=True)
                await self.release()
        return await self._try_acquire()

    async def _try_acquire(self) -> bool:
        conn: AsyncConnection | None = None
        try:
            conn = await self.engine.connect()
            got = await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
            await conn.commit()  # end the implicit transaction; the session lock stays
        except Exception:
            log.debug("leadership not acquired (database away)", exc_info=True)
            got = False
        if got and conn is not None:
            self._conn = conn
            log.info("this replica leads the background tasks")
            return True
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
        return False

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()  # drop the session: Postgres frees its locks


async def every(
    seconds: float,
    task: Callable[[], Awaitable[object]],
    leadership: Leadership | None = None,
    name: str = "background task",
) -> None:
    """Run `task` every `seconds` (only while leading, when `leadership` is given);
    a failure is logged and retried on the next round, never ends the loop."""
    while True:
        try:
            if leadership is None or await leadership.check():
                await task()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("%s failed; trying again in %.1f s", name, seconds, exc_info=True)
        await asyncio.sleep(seconds)
