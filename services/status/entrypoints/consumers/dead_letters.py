"""Dead letters into the store (`GET /dead-letters`), each ending its job's view unless the
job is already terminal, in the same transaction."""

from __future__ import annotations

import logging
from typing import Any

from faststream import AckPolicy
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from services.status.adapters import wire
from services.status.adapters.db_errors import db_retrying, is_transient
from services.status.domain.dead_letters import DeadLetter
from services.status.entrypoints.consumers.deliveries import user_id_of
from services.status.service_layer.projecting import record_dead_letter
from services.status.service_layer.unit_of_work import UnitOfWorkFactory
from shared import topology
from shared.identity import WorkerUsers
from shared.service import the_delivery

log = logging.getLogger("hybridq.status.consumers")


def subscribe(
    broker: RabbitBroker,
    units: UnitOfWorkFactory,
    workers: WorkerUsers,
    hold_seconds: float,
    kind: topology.WorkQueueType = topology.WorkQueueType.CLASSIC,
) -> None:
    @broker.subscriber(
        topology.for_kind(topology.STATUS_DEAD_LETTERS, kind),
        topology.DEAD_LETTER_EXCHANGE,
        ack_policy=AckPolicy.MANUAL,
        decoder=the_delivery,
        title="status.dead_letters",
    )
    async def on_dead_letter(msg: RabbitMessage) -> None:
        headers: dict[str, Any] = dict(msg.headers or {})
        try:
            letter = wire.read_dead_letter(
                msg.body, headers, msg.message_id, user_id_of(msg), workers
            )
        except Exception as exc:  # a header shaped like nothing we know: keep the bytes
            log.warning("dead letter unreadable; storing it raw", exc_info=True)
            letter = wire.fallback_dead_letter(msg.body, msg.message_id, exc)
        if await _record(units, letter, hold_seconds, msg):
            await msg.ack()


async def _record(
    units: UnitOfWorkFactory, letter: DeadLetter, hold_seconds: float, msg: RabbitMessage
) -> bool:
    """Store a dead letter; False (and handed back) when the database stayed away."""
    # if Postgres refuses the content itself, the raw bytes are stored (base64) instead
    raw = wire.fallback_dead_letter(msg.body, letter.id, ValueError("refused by the store"))
    for candidate in (letter, raw):
        try:
            async for attempt in db_retrying(hold_seconds):
                with attempt:
                    async with units() as uow:
                        await record_dead_letter(uow, candidate)
            return True
        except Exception as exc:
            if is_transient(exc):
                log.warning("database away past the hold; handing the dead letter back")
                await msg.nack(requeue=True)
                return False
            log.warning("dead letter refused by the store for its content", exc_info=True)
    log.error("dead letter could not be stored in any form; dropped: %s", letter.id)
    return True
