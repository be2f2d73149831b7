"""The status service's subscribers: lifecycle events and dead letters into Postgres."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from faststream import AckPolicy
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.db_errors import db_retrying
from services.status.projector import Projector
from services.status.store import record_dead_letter
from shared import topology
from shared.bus import Bus
from shared.contracts.events import parse_event
from shared.contracts.parsing import readable_job_id
from shared.dead_letters import (
    DEAD_LETTER_ID_HEADER,
    DETAIL_HEADER,
    JOB_ID_HEADER,
    DeadLetterReason,
    dead_lettered_at,
    reason_of,
)
from shared.errors import PermanentError, RetryableError
from shared.service import raw_body

log = logging.getLogger("hybridq.status.consumers")


def subscribe(
    broker: RabbitBroker,
    bus: Bus,
    projector: Projector,
    engine: AsyncEngine,
    kind: topology.WorkQueueType = topology.WorkQueueType.CLASSIC,
) -> None:
    @broker.subscriber(
        topology.for_kind(topology.STATUS_EVENTS, kind),
        topology.EVENTS,
        ack_policy=AckPolicy.MANUAL,
        decoder=raw_body,
        title="status.events",
    )
    async def on_event(msg: RabbitMessage) -> None:
        try:
            event = parse_event(msg.body)
        except ValidationError as exc:
            await bus.dead_letter(
                msg.body,
                reason=DeadLetterReason.SCHEMA,
                source_queue=topology.STATUS_EVENTS.name,
                detail=str(exc),
            )
            await msg.ack()
            return
        try:
            await projector.project(event)
        except RetryableError:
            await msg.nack(requeue=True)
        except PermanentError as exc:
            await bus.dead_letter(
                msg.body,
                reason=DeadLetterReason.PERMANENT_ERROR,
                source_queue=topology.STATUS_EVENTS.name,
                detail=str(exc),
                job_id=str(event.job_id),
            )
            await msg.ack()
        else:
            await msg.ack()

    @broker.subscriber(
        topology.for_kind(topology.STATUS_DEAD_LETTERS, kind),
        topology.DEAD_LETTER_EXCHANGE,
        ack_policy=AckPolicy.MANUAL,
        decoder=raw_body,
        title="status.dead_letters",
    )
    async def on_dead_letter(msg: RabbitMessage) -> None:
        values = dead_letter_row(msg.body, dict(msg.headers or {}), msg.message_id)
        try:
            async for attempt in db_retrying():
                with attempt:
                    await record_dead_letter(engine, values)
        except Exception:
            log.exception("dead letter not recorded; handing it back")
            await msg.nack(requeue=True)
            return
        await msg.ack()


def dead_letter_row(body: bytes, headers: dict[str, Any], message_id: str | None) -> dict[str, Any]:
    """What the store keeps of a dead letter: reason and origin from headers, job from body."""
    reason, source = reason_of(headers)
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    job_id = headers.get(JOB_ID_HEADER) or readable_job_id(data)
    fields = data if isinstance(data, dict) else {}
    return {
        "id": str(headers.get(DEAD_LETTER_ID_HEADER) or message_id or uuid4()),
        "job_id": UUID(str(job_id)) if job_id else None,
        "job_type": fields.get("job_type") if isinstance(fields.get("job_type"), str) else None,
        "site": fields.get("site") if fields.get("site") in ("public", "private") else None,
        "reason": reason,
        "detail": str(headers.get(DETAIL_HEADER) or "") or None,
        "source_queue": source,
        "dead_lettered_at": dead_lettered_at(headers) or datetime.now(UTC),
        "body": body.decode("utf-8", errors="replace"),
        "headers": json.loads(json.dumps(headers, default=str)),
    }
