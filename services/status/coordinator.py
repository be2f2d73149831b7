"""The saga coordinator as its own subscriber: job endings from `jobs.status.groups`.

Its own durable queue, so it neither waits for nor hooks into the projection, and every
status replica shares the work. A member's ending and the compensations it calls for are
written in one transaction (outbox), then the relay publishes them. Rejections and endings
that never reach the bus (a broker-dead-lettered member) are found by the group sweep.
"""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status import outbox, saga, wire
from services.status.consumers import user_id_of
from services.status.db_errors import HOLD_SECONDS, db_retrying, is_transient
from services.status.publishers import worker_site
from services.status.tables import jobs
from shared import topology
from shared.bus import Bus
from shared.contracts.events import AnyEvent, JobCancelled, JobDeadLettered, JobSucceeded
from shared.contracts.jobs import Site
from shared.service import raw_body

log = logging.getLogger("hybridq.status.coordinator")
ENDING_STATUS = {
    JobSucceeded: "succeeded",
    JobDeadLettered: "dead_lettered",
    JobCancelled: "cancelled",
}


async def record_ending(engine: AsyncEngine, event: AnyEvent, publisher: Site | None) -> int:
    """Record a member's ending (unless a worker forged it for another site's job);
    returns how many compensations were queued."""
    status = ENDING_STATUS.get(type(event))
    if status is None:
        return 0
    site = getattr(event, "site", None)
    async with engine.begin() as conn:
        if publisher is not None:
            known = await conn.scalar(select(jobs.c.site).where(jobs.c.job_id == event.job_id))
            if any(s is not None and str(s) != publisher.value for s in (site, known)):
                log.warning("ignored a forged ending", extra={"job_id": str(event.job_id)})
                return 0
        due = await saga.member_ended(conn, event.job_id, status, site.value if site else None)
    return len(due)


def subscribe(
    broker: RabbitBroker,
    bus: Bus,
    engine: AsyncEngine,
    hold_seconds: float = HOLD_SECONDS,
    kind: topology.WorkQueueType = topology.WorkQueueType.CLASSIC,
) -> None:
    @broker.subscriber(
        topology.for_kind(topology.STATUS_GROUPS[0], kind),
        topology.EVENTS,
        ack_policy=AckPolicy.MANUAL,
        decoder=raw_body,
        title="status.groups",
    )
    async def on_ending(msg: RabbitMessage) -> None:
        try:
            event = wire.read_event(msg.body)
        except wire.Unreadable:
            await msg.ack()  # the events consumer dead-letters its own copy, with the reason
            return
        try:
            async for attempt in db_retrying(hold_seconds):
                with attempt:
                    queued = await record_ending(engine, event, worker_site(user_id_of(msg)))
        except Exception as exc:
            if is_transient(exc):
                await msg.nack(requeue=True)
                return
            log.warning("ending not recorded (its content)", exc_info=True)
            queued = 0
        await msg.ack()
        if queued:
            try:
                await outbox.relay(engine, bus)
            except Exception:
                log.warning("compensations recorded; the relay will publish them", exc_info=True)
