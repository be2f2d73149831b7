"""The router's ledger of what it has accepted and dispatched: a duplicate is never run.

The ledger lives in Postgres (see `ledger_store`), shared by every router replica, so no
guarantee rests on one process's memory or disk. Keys (see `intake_key`, `dispatch_key`):

- `job:<job_id>` -- a JobSubmitted was accepted (placed, dispatched or parked);
- `dispatch:<job_id>:<attempt>:<park_id>` -- the due consumer dispatched that parking of
  that attempt (a delayed job's first attempt, a retry, a job a busy worker put back).
  Each parking (`Bus.delay`) gets its own `park_id`, so a new message for the same job
  goes through, while a duplicated or redelivered copy of one parked message is not
  dispatched twice.

A key is *claimed* (pending, with a lease in the owner's name) before the work and
marked *done* once its events and dispatch are confirmed. What a copy of a message does
when it finds the key taken:

- done: a duplicate -- acked and dropped.
- pending, lease live, first delivery: a distinct copy of a message whose own delivery
  is being processed (that delivery ends done, or is handed back and redelivered) --
  dropped.
- pending, lease live, redelivered: it may be the claim's own message, handed back by a
  broker that lost its holder -- held (polled) until the claim is done (drop), released
  (claim it) or its lease runs out (take it over). A duplicate copy that was redelivered
  is therefore never run while the original is still in flight elsewhere.
- pending, lease run out (the holder died: nobody renews it): taken over.

Holders renew the leases of what they process every second; a process killed with
`kill -9` stops renewing and its claims are taken over within one lease.
Anything going wrong with the database is transient: the call is retried for a bounded
hold, then `LedgerAway` (retryable) hands the delivery back to the broker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar
from uuid import UUID, uuid4

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from shared.errors import RetryableError
from shared.tasks import cancel_and_wait

from .batcher import Batcher
from .ledger_store import LedgerStore, Seen

log = logging.getLogger("hybridq.router.ledger")

T = TypeVar("T")

LIFETIME_MARGIN_DAYS = 8.0
"""Ledger rows outlive RETENTION_DAYS by the longest a job can still be on its way after
it was claimed (a 7-day delay plus its retries), so the ledger forgets a job only after
the status service has."""
PURGE_BATCH = 500
PURGE_EVERY_SECONDS = 300.0
PROBE_EVERY_SECONDS = 1.0
POLL_SECONDS = 0.25


def intake_key(job_id: UUID) -> str:
    return f"job:{job_id}"


def dispatch_key(job_id: UUID, attempt: int, park_id: UUID | None = None) -> str:
    """One key per parking of an attempt: a duplicated copy of the parked message is not
    dispatched twice, the same attempt parked again on purpose is."""
    return f"dispatch:{job_id}:{attempt}" + (f":{park_id}" if park_id else "")


class LedgerAway(RetryableError):
    """The database did not answer within the hold: hand the delivery back."""


class ClaimHeld(RetryableError):
    """Another delivery still holds the claim after the hold: hand this one back."""


class Ledger:
    def __init__(
        self,
        store: LedgerStore,
        *,
        lease_seconds: float,
        hold_seconds: float,
        retention_days: float,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.owner = owner or f"{socket.gethostname()}/{os.getpid()}/{uuid4().hex[:8]}"
        self.lease = lease_seconds
        self.hold = max(hold_seconds, 2 * lease_seconds)
        self.retention_days = retention_days
        self.healthy = False
        self._held: set[str] = set()
        self._claims = Batcher[str, Seen](self._claim_batch, repeat=Seen.BUSY)
        self._finishes = Batcher[str, None](self._finish_batch, repeat=None)
        self._tasks: list[asyncio.Task[None]] = []

    # -- what handlers call ------------------------------------------------------------
    async def acquire(self, key: str, *, redelivered: bool) -> bool:
        """True: this delivery processes the work; False: it is a duplicate (drop it)."""
        deadline = time.monotonic() + self.hold
        while True:
            seen = await self._db(lambda: self._claims.submit(key), deadline)
            if seen in (Seen.NEW, Seen.TAKEN_OVER):
                self._held.add(key)
                if seen is Seen.TAKEN_OVER:
                    log.warning("claim taken over from a lost holder", extra={"key": key})
                return True
            if seen is Seen.DONE or not redelivered:
                return False
            if time.monotonic() >= deadline:
                raise ClaimHeld(f"{key} is still held by another delivery")
            await asyncio.sleep(POLL_SECONDS)

    async def finish(self, key: str) -> None:
        """Record the work as done (held through a database outage, then `LedgerAway`)."""
        try:
            await self._db(lambda: self._finishes.submit(key), time.monotonic() + self.hold)
        finally:
            self._held.discard(key)

    async def release(self, key: str) -> None:
        """Give a claim back after the work failed, so the handed-back copy is processed
        at once. Best effort: if the database is away, the lease runs out instead."""
        self._held.discard(key)
        try:
            await self.store.release([key], self.owner)
        except Exception:
            log.warning("could not release a claim; its lease will run out", extra={"key": key})

    async def known(self, key: str) -> bool:
        return await self._db(lambda: self.store.known(key), time.monotonic() + self.hold)

    def ready(self) -> bool:
        return self.healthy

    # -- background --------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._renew_forever()),
            asyncio.create_task(self._purge_forever()),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        await self.store.close()

    async def _renew_forever(self) -> None:
        """Renew the leases of claims in progress; doubles as the readiness probe."""
        while True:
            try:
                await self.store.renew(sorted(self._held), self.owner, self.lease)
                self.healthy = True
            except Exception:
                self._unhealthy()
            await asyncio.sleep(PROBE_EVERY_SECONDS)

    async def _purge_forever(self) -> None:
        await asyncio.sleep(random.uniform(0, 10))
        while True:
            await self.purge()
            await asyncio.sleep(PURGE_EVERY_SECONDS)

    async def purge(self) -> int:
        """Delete rows older than the retention, in small batches; safe on every replica."""
        total = 0
        try:
            while True:
                deleted = await self.store.purge(
                    self.retention_days + LIFETIME_MARGIN_DAYS, PURGE_BATCH
                )
                total += deleted
                if deleted < PURGE_BATCH:
                    return total
                await asyncio.sleep(0.1)
        except Exception:
            log.warning("ledger purge failed; next round will retry", exc_info=True)
            return total

    # -- plumbing ----------------------------------------------------------------------
    async def _claim_batch(self, keys: list[str]) -> dict[str, Seen]:
        return dict(await self.store.claim(keys, self.owner, self.lease))

    async def _finish_batch(self, keys: list[str]) -> dict[str, None]:
        await self.store.finish(keys, self.owner)
        return dict.fromkeys(keys)

    async def _db(self, call: Callable[[], Awaitable[T]], deadline: float) -> T:
        try:  # the usual case, without building a retry loop for every delivery
            result = await call()
        except Exception:
            return await self._db_retrying(call, deadline)
        self.healthy = True
        return result

    async def _db_retrying(self, call: Callable[[], Awaitable[T]], deadline: float) -> T:
        await asyncio.sleep(0.1)  # the first attempt failed a moment ago
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(Exception),
                wait=wait_exponential(multiplier=0.1, max=2),
                stop=stop_after_delay(max(0.0, deadline - time.monotonic())),
                reraise=True,
            ):
                with attempt:
                    result = await call()
        except Exception as exc:
            self._unhealthy()
            raise LedgerAway(f"de-duplication ledger unavailable: {exc}") from exc
        self.healthy = True
        return result

    def _unhealthy(self) -> None:
        if self.healthy:
            log.warning("de-duplication ledger unavailable", exc_info=True)
        self.healthy = False
