"""The worker fleet: heartbeats and leases from `jobs.status.workers` into Postgres, and
the live fleet for `GET /workers`."""

from __future__ import annotations

import logging
from typing import Any

from faststream import AckPolicy
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from pydantic import ValidationError
from sqlalchemy import delete, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.db_errors import db_retrying
from services.status.queries import rows
from services.status.tables import leases, workers
from shared import topology
from shared.bus import Bus
from shared.contracts.workers import (
    WORKER_MESSAGE_ADAPTER,
    AnyWorkerMessage,
    AttemptLeased,
    AttemptReleased,
    WorkerHeartbeat,
)
from shared.dead_letters import DeadLetterReason
from shared.service import the_delivery

log = logging.getLogger("hybridq.status.workers")
LIVE_INTERVALS = 3  # a worker not heard from for 3 heartbeat intervals is not listed
MIN_LIVE_SECONDS = 15.0


def subscribe(
    broker: RabbitBroker,
    bus: Bus,
    engine: AsyncEngine,
    kind: topology.WorkQueueType = topology.WorkQueueType.CLASSIC,
) -> None:
    @broker.subscriber(
        topology.for_kind(topology.STATUS_WORKERS, kind),
        topology.EVENTS,
        ack_policy=AckPolicy.MANUAL,
        decoder=the_delivery,
        title="status.workers",
    )
    async def on_worker_message(msg: RabbitMessage) -> None:
        try:
            message = WORKER_MESSAGE_ADAPTER.validate_json(msg.body)
        except ValidationError as exc:
            await bus.dead_letter(
                msg.body,
                reason=DeadLetterReason.SCHEMA,
                source_queue=topology.STATUS_WORKERS.name,
                detail=str(exc),
            )
            await msg.ack()
            return
        try:
            async for attempt in db_retrying():
                with attempt:
                    await record(engine, message)
        except Exception:
            log.exception("worker message not recorded; handing it back")
            await msg.nack(requeue=True)
            return
        await msg.ack()


async def record(engine: AsyncEngine, message: AnyWorkerMessage) -> None:
    async with engine.begin() as conn:
        if isinstance(message, WorkerHeartbeat):
            values: dict[str, Any] = {
                "worker": message.worker,
                "site": message.site.value,
                "job_types": message.job_types,
                "concurrency": message.concurrency,
                "running": [r.model_dump(mode="json") for r in message.running],
                "interval_seconds": message.interval_seconds,
                "last_seen": func.now(),
            }
            stmt = insert(workers).values(instance=message.instance, **values)
            await conn.execute(stmt.on_conflict_do_update(index_elements=["instance"], set_=values))
            held = [(r.job_id, r.attempt) for r in message.running]
            if held:  # a listed attempt's lease is renewed
                await conn.execute(
                    update(leases)
                    .where(
                        leases.c.instance == message.instance,
                        tuple_(leases.c.job_id, leases.c.attempt).in_(held),
                    )
                    .values(renewed_at=func.now())
                )
        elif isinstance(message, AttemptLeased):
            values = {
                "worker": message.worker,
                "job": message.job.model_dump(mode="json"),
                "lease_seconds": message.lease_seconds,
                "retry_base_seconds": message.retry_base_seconds,
                "retry_max_seconds": message.retry_max_seconds,
                "renewed_at": func.now(),
            }
            stmt = insert(leases).values(
                job_id=message.job.job_id,
                attempt=message.job.attempt,
                instance=message.instance,
                **values,
            )
            await conn.execute(stmt.on_conflict_do_nothing())
        elif isinstance(message, AttemptReleased):
            await conn.execute(
                delete(leases).where(
                    leases.c.job_id == message.job_id,
                    leases.c.attempt == message.attempt,
                    leases.c.instance == message.instance,
                )
            )


async def live_workers(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Workers heard from within LIVE_INTERVALS heartbeat intervals, by site and name."""
    window = func.greatest(workers.c.interval_seconds * LIVE_INTERVALS, MIN_LIVE_SECONDS)
    query = (
        select(workers)
        .where(workers.c.last_seen >= func.now() - window * text("interval '1 second'"))
        .order_by(workers.c.site, workers.c.worker, workers.c.instance)
    )
    return [
        {
            "worker": r.worker,
            "instance": r.instance,
            "site": r.site,
            "job_types": r.job_types,
            "concurrency": r.concurrency,
            "running": r.running,
            "last_seen": r.last_seen,
        }
        for r in await rows(engine, query)
    ]


async def forget_old_workers(engine: AsyncEngine, days: float = 1.0) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            delete(workers).where(
                workers.c.last_seen < func.now() - text(f"interval '{float(days)} days'")
            )
        )
