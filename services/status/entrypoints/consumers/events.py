"""Lifecycle events into the projection: event batches (contract v1.2 §3.2) and, during an
upgrade, v1.1 single events, from `jobs.status.events`."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from faststream import AckPolicy
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from faststream.rabbit.schemas import Channel

from services.status.adapters import wire
from services.status.domain.arrivals import Arrival, Outcome
from services.status.entrypoints.consumers.deliveries import Taken, dead_letter_and_ack
from services.status.entrypoints.consumers.projector import Projector
from shared import topology
from shared.bus import Bus
from shared.contracts import batches
from shared.dead_letters import DeadLetterReason
from shared.errors import PermanentError
from shared.identity import WorkerUsers
from shared.service import the_delivery

log = logging.getLogger("hybridq.status.consumers")
PREFETCH = 32
"""Deliveries in hand: each is a batch of up to 1,000 events."""


@dataclass(frozen=True)
class Refused:
    """One event of a message that is dead-lettered on its own: why, and its bytes."""

    body: bytes
    reason: str
    detail: str
    job_id: str | None


async def handle_events(taken: Taken, bus: Bus, projector: Projector, workers: WorkerUsers) -> None:
    """Project the events of one delivery and settle it. Each event is treated on its own:
    one that is unreadable, forbidden or refused by the store for its content is
    dead-lettered with its reason while its neighbours are applied; the delivery is acked
    once all of them are applied or dead-lettered, and handed back whole while the database
    stays away (nothing dead-lettered then; its events are idempotent by `event_id`)."""
    try:
        items = wire.read_events(taken.body)
    except wire.Unreadable as exc:
        await dead_letter_and_ack(taken, bus, exc.reason, exc.detail, exc.job_id)
        return
    speaker = workers.speaker(taken.user_id)
    events = [i for i in items if not isinstance(i, batches.Unreadable)]
    results = await asyncio.gather(
        *(projector.project(Arrival(e, speaker)) for e in events), return_exceptions=True
    )
    if any(isinstance(r, BaseException) and not isinstance(r, PermanentError) for r in results):
        await taken.hand_back()  # the database stayed away past the hold
        return
    single = len(items) == 1
    refused = [
        Refused(taken.body if single else _json(i.raw), i.reason, i.detail, i.job_id)
        for i in items
        if isinstance(i, batches.Unreadable)
    ]
    for event, result in zip(events, results, strict=True):
        body = taken.body if single else event.model_dump_json().encode()
        if isinstance(result, PermanentError):
            refused.append(
                Refused(body, DeadLetterReason.PERMANENT_ERROR, str(result), str(event.job_id))
            )
        elif result is Outcome.FORBIDDEN:
            detail = f"{taken.user_id} may not report {event.type} on job {event.job_id}"
            refused.append(Refused(body, DeadLetterReason.FORBIDDEN, detail, str(event.job_id)))
    for one in refused:
        try:
            await bus.dead_letter(
                one.body,
                reason=one.reason,
                source_queue=topology.STATUS_EVENTS.name,
                detail=one.detail,
                job_id=one.job_id,
            )
        except Exception:
            log.warning("dead letter not published; handing the events back", exc_info=True)
            await taken.hand_back()
            return
    await taken.ack()


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", errors="replace")


def subscribe(
    broker: RabbitBroker,
    bus: Bus,
    projector: Projector,
    workers: WorkerUsers,
    kind: topology.WorkQueueType = topology.WorkQueueType.CLASSIC,
) -> None:
    """The events consumer, on a channel of its own (its prefetch bounds the events in
    hand). The queue is bound to `events.#` and, for v1.1 publishers, `job.#`
    (shared/topology.py declares both)."""

    @broker.subscriber(
        topology.for_kind(topology.STATUS_EVENTS, kind),
        topology.EVENTS,
        channel=Channel(prefetch_count=PREFETCH),
        ack_policy=AckPolicy.MANUAL,
        decoder=the_delivery,
        title="status.events",
    )
    async def on_events(msg: RabbitMessage) -> None:
        await handle_events(Taken.of(msg), bus, projector, workers)
