"""What hybridq publishes, as plain values: an `Envelope` says where a message goes and what
it carries, and the functions here build every kind of hybridq message.

Nothing here touches the broker: the bus (shared/bus.py) sends envelopes, and the status
service's outbox stores them in the transaction that decided them and sends them after
(no dual write). Both build them with these functions, so a message means the same
whichever way it leaves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from shared import topology
from shared.contracts import batches
from shared.contracts.events import Event
from shared.contracts.jobs import JobSubmitted, PlacedJob
from shared.dead_letters import (
    DEAD_LETTER_ID_HEADER,
    DEAD_LETTERED_AT_HEADER,
    DETAIL_HEADER,
    JOB_ID_HEADER,
    REASON_HEADER,
    SOURCE_QUEUE_HEADER,
    Sent,
)


@dataclass(frozen=True)
class Envelope:
    """One message to publish: exchange and routing key, body and properties."""

    exchange: str
    routing_key: str
    body: bytes
    message_id: str = field(default_factory=lambda: str(uuid4()))
    priority: int | None = None
    headers: dict[str, Any] | None = None
    expiration: float | None = None  # seconds


def submission(job: JobSubmitted) -> Envelope:
    """A JobSubmitted to `jobs.intake` (a client's, a child's, a group member's...), its
    message id the job's."""
    return Envelope(
        topology.INTAKE.name,
        topology.SUBMITTED_KEY,
        job.model_dump_json().encode(),
        message_id=str(job.job_id),
    )


def submitted_body(body: bytes) -> Envelope:
    return Envelope(topology.INTAKE.name, topology.SUBMITTED_KEY, body)


def dispatch(job: PlacedJob) -> Envelope:
    """A placed job to its site's work queue, with the job's priority."""
    return Envelope(
        topology.DISPATCH.name,
        job.site.value,
        job.model_dump_json().encode(),
        priority=job.priority,
    )


def parking(job: PlacedJob, now: datetime, *, same_park: bool = False) -> Envelope:
    """A job parked in the delay tier that fits the time left until `job.run_at`; the
    router's due consumer takes it from there. Each parking gets a new `park_id` (the due
    consumer dispatches each parking once); `same_park`: moving a parked job on to its
    next tier."""
    run_at = job.run_at
    assert run_at is not None
    if not same_park or job.park_id is None:
        job = job.model_copy(update={"park_id": uuid4()})
    tier = topology.tier_for((run_at - now).total_seconds())
    return Envelope(
        topology.DELAY.name, tier.name, job.model_dump_json().encode(), priority=job.priority
    )


def event_batches(events: Sequence[Event], source: str) -> list[Envelope]:
    """`events` as the event batches their publisher sends (contract §3.2)."""
    key = batches.routing_key(source)
    return [Envelope(topology.EVENTS.name, key, body) for body, _ in batches.encode(events)]


def dead_letter(
    body: bytes,
    *,
    reason: str,
    source_queue: str,
    detail: str = "",
    job_id: str | None = None,
    sent: Sent | None = None,
) -> Envelope:
    """A message that will not be run, to `jobs.dead-letter`, saying why (headers); `sent`:
    the dead letter's id and time (new ones by default), which its JobDeadLettered shares
    (shared/dead_letters.py)."""
    sent = sent or Sent(str(uuid4()), datetime.now(UTC))
    headers: dict[str, Any] = {
        REASON_HEADER: reason,
        SOURCE_QUEUE_HEADER: source_queue,
        DETAIL_HEADER: detail[:2000],
        DEAD_LETTER_ID_HEADER: sent.id,
        DEAD_LETTERED_AT_HEADER: sent.at.isoformat(),
    }
    if job_id:
        headers[JOB_ID_HEADER] = job_id
    return Envelope(
        topology.DEAD_LETTER_EXCHANGE.name, "", body, message_id=sent.id, headers=headers
    )
