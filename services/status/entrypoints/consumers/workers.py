"""Worker heartbeats and attempt leases from `jobs.status.workers` into the store."""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from pydantic import ValidationError

from services.status.adapters.db_errors import db_retrying
from services.status.service_layer import workers as fleet
from services.status.service_layer.unit_of_work import UnitOfWorkFactory
from shared import topology
from shared.bus import Bus
from shared.contracts.workers import WORKER_MESSAGE_ADAPTER
from shared.dead_letters import DeadLetterReason
from shared.service import the_delivery

log = logging.getLogger("hybridq.status.workers")


def subscribe(
    broker: RabbitBroker,
    bus: Bus,
    units: UnitOfWorkFactory,
    hold_seconds: float,
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
            async for attempt in db_retrying(hold_seconds):
                with attempt:
                    async with units() as uow:
                        await fleet.record(uow, message)
        except Exception:
            log.exception("worker message not recorded; handing it back")
            await msg.nack(requeue=True)
            return
        await msg.ack()
