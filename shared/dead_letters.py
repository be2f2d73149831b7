"""Dead-letter reasons and headers: how a message that was not run says why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from shared.contracts.events import JobDeadLettered


class DeadLetterReason(StrEnum):
    MALFORMED_JSON = "malformed_json"
    SCHEMA = "schema"
    OVERSIZE = "oversize"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    RESIDENCY = "residency"
    UNKNOWN_JOB_TYPE = "unknown_job_type"
    MAX_ATTEMPTS = "max_attempts"
    PERMANENT_ERROR = "permanent_error"
    DELIVERY_LIMIT = "delivery_limit"
    FORBIDDEN = "forbidden"  # a worker's user published for another site (shared/identity.py)


REASON_HEADER = "x-hybridq-reason"
DETAIL_HEADER = "x-hybridq-detail"
SOURCE_QUEUE_HEADER = "x-hybridq-source-queue"
DEAD_LETTER_ID_HEADER = "x-hybridq-dead-letter-id"
JOB_ID_HEADER = "x-hybridq-job-id"
DEAD_LETTERED_AT_HEADER = "x-hybridq-dead-lettered-at"


def dead_lettered_at(headers: dict[str, Any]) -> datetime | None:
    """When a message was dead-lettered: our header, or the broker's `x-death` time."""
    ours = headers.get(DEAD_LETTERED_AT_HEADER)
    if isinstance(ours, str):
        try:
            return datetime.fromisoformat(ours)
        except ValueError:
            pass
    deaths = headers.get("x-death") or []
    if deaths and isinstance(deaths[0], dict) and isinstance(deaths[0].get("time"), datetime):
        at: datetime = deaths[0]["time"]
        return at if at.tzinfo else at.replace(tzinfo=UTC)
    return None


def reason_of(headers: dict[str, Any]) -> tuple[str, str | None]:
    """(reason, source queue) of a dead letter: ours, or the broker's `x-death` record."""
    if REASON_HEADER in headers:
        source = headers.get(SOURCE_QUEUE_HEADER)
        return str(headers[REASON_HEADER]), str(source) if source else None
    deaths = headers.get("x-death") or []
    if deaths and isinstance(deaths[0], dict):
        death = deaths[0]
        queue = death.get("queue")
        return str(death.get("reason", "rejected")), str(queue) if queue else None
    return "unknown", None


@dataclass(frozen=True)
class Sent:
    """A dead letter as published: its id and time (the headers say the same)."""

    id: str
    at: datetime


def ending_event_id(dead_letter_id: str) -> UUID:
    """The id of the event that ends a dead letter's job. Whoever says it -- the publisher
    of the dead letter, or the status service recording it -- says it with this id, so
    the job's history has one ending whichever copy arrives first (the other is a
    duplicate)."""
    return uuid5(NAMESPACE_URL, f"hybridq:dead-letter:{dead_letter_id}")


def dead_lettered_event(
    sent: Sent, job_id: UUID, reason: str, detail: str | None, attempts: int
) -> JobDeadLettered:
    """The `JobDeadLettered` of a dead letter, the same from the worker and from the status
    service: the reason with its detail (the first terminal view should say why, even
    before the attempt's own JobFailed is projected), the dead letter's time."""
    said = f"{reason}: {detail}" if detail else reason
    return JobDeadLettered(
        event_id=ending_event_id(sent.id),
        job_id=job_id,
        reason=said[:2000],
        attempts=attempts,
        occurred_at=sent.at,
    )
