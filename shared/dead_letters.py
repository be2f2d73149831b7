"""Dead-letter reasons and headers: how a message that was not run says why."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


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
