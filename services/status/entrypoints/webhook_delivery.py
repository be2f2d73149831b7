"""The webhook delivery worker: a background task on every status replica.

Each round it claims, per webhook, up to `concurrency` due deliveries less those it already
has in flight (claims are rows locked with SKIP LOCKED and leased in Postgres, so replicas
take different ones and a replica's death only delays its claims until their lease ends),
sends each in a task of its own and settles it. A job's next delivery is claimable only
once its previous one is delivered or given up, so a job's events arrive in order; a slow
or dead receiver fills its own slots only, never another webhook's or the projection's.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

from services.status.domain.webhooks import Webhook
from services.status.service_layer import webhooks
from services.status.service_layer.unit_of_work import Delivery, UnitOfWorkFactory
from services.status.service_layer.webhooks import RetryPolicy, Sender
from shared.settings import StatusSettings
from shared.tasks import cancel_and_wait

log = logging.getLogger("hybridq.status.webhooks")
SETTLE_TRIES = 5


def utc_now() -> datetime:
    return datetime.now(UTC)


def policy_of(settings: StatusSettings) -> RetryPolicy:
    return RetryPolicy(
        base_seconds=settings.webhook_retry_base_seconds,
        max_seconds=settings.webhook_retry_max_seconds,
        give_up_after=timedelta(seconds=settings.webhook_give_up_seconds),
    )


class DeliveryWorker:
    def __init__(
        self,
        units: UnitOfWorkFactory,
        sender: Sender,
        *,
        policy: RetryPolicy,
        concurrency: int = 4,
        lease_seconds: float = 30.0,
        poll_seconds: float = 0.5,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.units = units
        self.sender = sender
        self.policy = policy
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.in_flight: dict[UUID, set[asyncio.Task[None]]] = defaultdict(set)
        self.wake = asyncio.Event()

    @classmethod
    def from_settings(
        cls, units: UnitOfWorkFactory, sender: Sender, settings: StatusSettings
    ) -> DeliveryWorker:
        return cls(
            units,
            sender,
            policy=policy_of(settings),
            concurrency=settings.webhook_concurrency,
            lease_seconds=settings.webhook_lease_seconds,
            poll_seconds=settings.webhook_poll_seconds,
        )

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.round()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # database away: the next round tries again
                    log.warning("webhook delivery round failed", extra={"error": repr(exc)})
                try:
                    async with asyncio.timeout(self.poll_seconds):
                        await self.wake.wait()
                except TimeoutError:
                    pass
                self.wake.clear()
        finally:
            # what is in flight is not settled: its lease ends and a replica sends it again
            await cancel_and_wait([t for ts in self.in_flight.values() for t in ts])

    async def round(self) -> int:
        """Claim and start what is due; returns how many deliveries were started."""
        async with self.units() as uow:
            hooks = await uow.webhooks.all()
        started = 0
        for hook in hooks:
            free = self.concurrency - len(self.in_flight[hook.webhook_id])
            if free <= 0:
                continue
            claimed = await webhooks.claim(
                self.units, hook.webhook_id, self.clock(), self.lease_seconds, free
            )
            for delivery in claimed:
                task = asyncio.create_task(self._deliver(hook, delivery))
                self.in_flight[hook.webhook_id].add(task)
                task.add_done_callback(self.in_flight[hook.webhook_id].discard)
            started += len(claimed)
        return started

    async def _deliver(self, hook: Webhook, delivery: Delivery) -> None:
        answer = await self.sender.send(hook, delivery)
        for attempt in range(SETTLE_TRIES):
            try:
                await webhooks.settle(self.units, delivery, answer, self.clock(), self.policy)
                break
            except Exception as exc:  # the lease ends and the delivery is sent again
                log.warning(
                    "could not record a webhook attempt",
                    extra={"delivery_id": delivery.delivery_id, "error": repr(exc)},
                )
                await asyncio.sleep(0.5 * (attempt + 1))
        self.wake.set()  # the job's next event may be due now
