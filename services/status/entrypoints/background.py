"""The status service's background tasks, safe with several replicas.

On every replica: the outbox relay (rows claimed with SKIP LOCKED), the schedule firer
(compare-and-set claims), the lease sweep (leases taken with SKIP LOCKED) and the webhook
delivery worker (deliveries claimed with SKIP LOCKED and a lease). On the one
replica holding the leadership lock (adapters/leader.py): the group sweep, retention and
forgetting long-gone workers. Every task is idempotent; a round that fails is logged and
the next round tries again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.adapters.leader import Leadership, every
from services.status.adapters.outbox import Relay
from services.status.adapters.postgres import due_at
from services.status.adapters.webhook_client import HttpSender
from services.status.entrypoints.webhook_delivery import DeliveryWorker
from services.status.service_layer import groups, leases, retention
from services.status.service_layer import schedules as firing
from services.status.service_layer import workers as fleet
from services.status.service_layer.unit_of_work import UnitOfWorkFactory
from shared.metrics import SCHEDULE_FIRING_LAG, SCHEDULE_FIRINGS
from shared.settings import StatusSettings
from shared.tasks import cancel_and_wait

log = logging.getLogger("hybridq.status.background")
LEASE_SWEEP_SECONDS = 2.0
FORGET_WORKERS_SECONDS = 3600.0


def utc_now() -> datetime:
    return datetime.now(UTC)


async def anything_due(engine: AsyncEngine, now: datetime) -> bool:
    """Whether a schedule is due: one autocommit statement on the partial index, so the
    firer's empty rounds (most of them, twice a second on every replica) cost one read."""
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        return bool(await autocommit.scalar(select(exists().where(due_at(now)))))


@dataclass
class Background:
    engine: AsyncEngine
    units: UnitOfWorkFactory
    relay: Relay
    settings: StatusSettings
    leadership: Leadership = field(init=False)
    sender: HttpSender = field(init=False)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.leadership = Leadership(self.engine)
        self.sender = HttpSender(self.settings.allowed_webhook_hosts)

    def start(self) -> None:
        s = self.settings
        keep = timedelta(days=s.retention_days)
        lead = self.leadership

        async def sweep_groups() -> None:
            await groups.sweep(self.units)

        async def purge() -> None:
            await retention.purge(self.units, keep, utc_now())

        async def forget_workers() -> None:
            async with self.units() as uow:
                await uow.workers.forget(fleet.FORGET_AFTER_DAYS)

        self.tasks = [
            asyncio.create_task(self.relay.run(), name="outbox relay"),
            asyncio.create_task(self._fire(), name="schedule firer"),
            asyncio.create_task(self._sweep_leases(), name="lease sweep"),
            asyncio.create_task(
                DeliveryWorker.from_settings(self.units, self.sender, s).run(),
                name="webhook delivery",
            ),
            asyncio.create_task(every(s.group_sweep_seconds, sweep_groups, lead, "group sweep")),
            asyncio.create_task(every(s.retention_interval_seconds, purge, lead, "retention")),
            asyncio.create_task(
                every(FORGET_WORKERS_SECONDS, forget_workers, lead, "forget workers")
            ),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self.tasks)  # no publish after the broker stops
        await self.leadership.release()
        await self.sender.close()

    async def _fire(self) -> None:
        while True:
            try:
                now = utc_now()
                if await anything_due(self.engine, now):
                    for fired in await firing.fire_due(self.units, now):
                        kind = "caught_up" if fired.caught_up else "on_time"
                        SCHEDULE_FIRINGS.labels(kind).inc()
                        lag = (utc_now() - fired.fire_time).total_seconds()
                        SCHEDULE_FIRING_LAG.observe(max(0.0, lag))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database away: transient, the next round retries
                log.warning("schedule firer round failed", extra={"error": repr(exc)})
            await asyncio.sleep(self.settings.schedule_poll_seconds)

    async def _sweep_leases(self) -> None:
        """Sweep lapsed leases every couple of seconds; after a start or a database error,
        judge nothing for one lease period (heartbeats queued meanwhile come first)."""
        rng = random.Random()
        healthy_since = time.monotonic()
        while True:
            try:
                async with self.units() as uow:
                    await leases.sweep(uow, time.monotonic() - healthy_since, utc_now(), rng)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("lease sweep failed; trying again", exc_info=True)
                healthy_since = time.monotonic()
            await asyncio.sleep(LEASE_SWEEP_SECONDS)
