"""Which jobs have been cancelled, learnt live from `job.cancelled` events.

Each process (router, worker) binds its own exclusive, auto-delete queue to
`jobs.events` / `job.cancelled`, so every replica hears every cancellation.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from uuid import UUID, uuid4

from faststream.rabbit import RabbitBroker, RabbitQueue

from shared import topology
from shared.contracts.events import JobCancelled

MAX_REMEMBERED = 100_000
REMEMBER_SECONDS = 8 * 24 * 3600  # longer than the longest delay


class Cancellations:
    def __init__(self) -> None:
        self._cancelled: OrderedDict[UUID, float] = OrderedDict()
        self._watchers: dict[UUID, list[Callable[[], None]]] = {}

    def cancel(self, job_id: UUID) -> None:
        self._cancelled[job_id] = time.monotonic()
        self._cancelled.move_to_end(job_id)
        while len(self._cancelled) > MAX_REMEMBERED:
            self._cancelled.popitem(last=False)
        for stop in self._watchers.pop(job_id, []):
            stop()

    def is_cancelled(self, job_id: UUID) -> bool:
        at = self._cancelled.get(job_id)
        return at is not None and time.monotonic() - at < REMEMBER_SECONDS

    def watch(self, job_id: UUID, task: asyncio.Task[object]) -> None:
        """Cancel `task` if the job is cancelled while it runs."""

        def stop() -> None:
            task.cancel()

        self._watchers.setdefault(job_id, []).append(stop)

    def unwatch(self, job_id: UUID) -> None:
        self._watchers.pop(job_id, None)


def listen(broker: RabbitBroker, cancellations: Cancellations, service: str) -> None:
    """Subscribe `cancellations` to every JobCancelled event on the bus."""
    queue = RabbitQueue(
        f"{topology.cancel_queue_prefix(service)}{uuid4().hex[:12]}",
        routing_key=JobCancelled.routing_key,
        exclusive=True,
        auto_delete=True,
        durable=False,
    )

    @broker.subscriber(queue, topology.EVENTS, title=f"{service}.cancellations")
    async def on_cancelled(event: JobCancelled) -> None:
        cancellations.cancel(event.job_id)
