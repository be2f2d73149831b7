"""Dead letters as the status service keeps them, and what each does to its job's view."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from shared import topology
from shared.contracts.events import AnyEvent, JobRejected
from shared.contracts.jobs import Site
from shared.dead_letters import DeadLetterReason, Sent, dead_lettered_event, ending_event_id

UNPROCESSABLE = frozenset(
    {
        DeadLetterReason.MALFORMED_JSON,
        DeadLetterReason.SCHEMA,
        DeadLetterReason.OVERSIZE,
        DeadLetterReason.UNKNOWN_SCHEMA_VERSION,
    }
)


class Ending(StrEnum):
    """What a dead letter does to its job's view."""

    NONE = "none"  # not the job's own message (an event's copy, a forged one)
    REJECT = "reject"  # an unprocessable copy: `rejected`, unless the job was accepted
    DEAD_LETTER = "dead_letter"  # the job itself will not run: `dead_lettered`


def ending_of(reason: str, source_queue: str | None) -> Ending:
    """Which dead letters end their job's view, and how (contract section 3.1)."""
    if source_queue == topology.STATUS_EVENTS.name or reason == DeadLetterReason.FORBIDDEN:
        return Ending.NONE  # a copy of an event, or a forgery: not the job's own message
    if reason in UNPROCESSABLE and source_queue == topology.ROUTER_INTAKE.name:
        # the router decides: its own JobRejected (with the field errors) ends an unknown
        # job, and a malformed copy of an accepted job must not end anything (section 3.1)
        return Ending.NONE
    if reason in UNPROCESSABLE:
        return Ending.REJECT
    return Ending.DEAD_LETTER


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter as the store keeps it (every text already storable, see sanitize)."""

    id: str
    job_id: UUID | None
    reason: str
    dead_lettered_at: datetime
    body: str
    raw_body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    job_type: str | None = None
    site: str | None = None
    detail: str | None = None
    source_queue: str | None = None
    attempts: int = 0
    publisher: Site | None = None  # the site of the worker whose user dead-lettered it
    ending: Ending = Ending.DEAD_LETTER


def ending_event(letter: DeadLetter) -> AnyEvent | None:
    """The event that ends the job of a dead letter; its id derives from the dead letter's,
    so recording the same dead letter twice gives the same event (a duplicate), and so does
    the worker's own JobDeadLettered for it."""
    if letter.job_id is None or letter.ending is Ending.NONE:
        return None
    if letter.ending is Ending.REJECT:
        return JobRejected(
            event_id=ending_event_id(letter.id),
            job_id=letter.job_id,
            reason=f"unprocessable message ({letter.reason})",
            occurred_at=letter.dead_lettered_at,
        )
    sent = Sent(letter.id, letter.dead_lettered_at)
    return dead_lettered_event(sent, letter.job_id, letter.reason, letter.detail, letter.attempts)
