"""Reading what arrives on the status service's queues, whatever it holds.

Nothing here raises for bad content except `Unreadable` (a clear reason for the dead
letter): a body that is not UTF-8, not JSON, nested too deep, too large, or not an event.
A dead letter is always readable as a `DeadLetter`: its headers may imitate hybridq's own,
so every header is checked for shape before it is believed.
"""

from __future__ import annotations

import binascii
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from services.status.adapters import sanitize
from services.status.domain.dead_letters import DeadLetter, Ending, ending_of
from shared.contracts import batches
from shared.contracts.batches import MAX_BATCH_BYTES
from shared.contracts.parsing import readable_attempt
from shared.dead_letters import (
    DEAD_LETTER_ID_HEADER,
    DETAIL_HEADER,
    JOB_ID_HEADER,
    DeadLetterReason,
    dead_lettered_at,
    reason_of,
)
from shared.identity import WorkerUsers

MAX_MESSAGE_BYTES = MAX_BATCH_BYTES
"""An event batch is at most 1 MiB (contract §3.2), and no hybridq event is larger: a
bigger message is hostile."""
MAX_STORED_BODY = 1024 * 1024
"""Bytes of a dead letter's body the store keeps (the rest is counted in `detail`)."""


DEFAULT_WORKERS = WorkerUsers()


class Unreadable(Exception):
    """A body that is not a lifecycle event; `reason` goes in the dead letter."""

    def __init__(self, reason: DeadLetterReason, detail: str, job_id: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.job_id = job_id


def read_events(body: bytes) -> list[batches.Item]:
    """The events of a message on the events queue, each read on its own (an event batch,
    or a v1.1 single event), with storable strings (NULs replaced). Raises `Unreadable` for
    a message that is not one (not JSON, too large)."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise Unreadable(DeadLetterReason.OVERSIZE, f"message of {len(body)} bytes")
    try:
        data = sanitize.loads(body)
    except ValueError as exc:
        raise Unreadable(DeadLetterReason.MALFORMED_JSON, f"not JSON: {exc}") from exc
    data = sanitize.scrub(data)
    return batches.read_items(data)


def _job_id(data: Any) -> str | None:
    found = _uuid(data.get("job_id")) if isinstance(data, dict) else None
    return str(found) if found else None


def _uuid(value: Any) -> UUID | None:
    if not isinstance(value, str | UUID):
        return None
    try:
        return UUID(str(value))
    except ValueError:
        return None


def _short(value: Any, limit: int = 2000) -> str | None:
    return sanitize.text(str(value))[:limit] if value not in (None, "") else None


def read_dead_letter(
    body: bytes,
    headers: dict[str, Any],
    message_id: str | None,
    user_id: str | None,
    workers: WorkerUsers = DEFAULT_WORKERS,
) -> DeadLetter:
    """What the store keeps of a dead letter: reason and origin from the headers (checked
    for shape), the job from the headers or the body, the body both readable and raw."""
    readable = {k: v for k, v in headers.items() if k != "x-death" or _deaths_ok(v)}
    reason, source = reason_of(readable)
    data = _small_json(body)
    fields = data if isinstance(data, dict) else {}
    job_id = _uuid(headers.get(JOB_ID_HEADER)) or _uuid(fields.get("job_id"))
    letter_id = _uuid(headers.get(DEAD_LETTER_ID_HEADER)) or _uuid(message_id) or uuid4()
    detail = _short(headers.get(DETAIL_HEADER))
    if len(body) > MAX_STORED_BODY:
        detail = f"{detail or ''} (body of {len(body)} bytes, first {MAX_STORED_BODY} kept)"
    at = dead_lettered_at(readable) or datetime.now(UTC)
    return DeadLetter(
        id=str(letter_id),
        job_id=job_id,
        reason=sanitize.text(reason)[:200],
        dead_lettered_at=at if at.tzinfo else at.replace(tzinfo=UTC),
        body=sanitize.body_text(body, MAX_STORED_BODY),
        raw_body=body[:MAX_STORED_BODY],
        headers=sanitize.scrub(headers),
        job_type=_short(fields["job_type"], 64)
        if isinstance(fields.get("job_type"), str)
        else None,
        site=fields["site"] if fields.get("site") in ("public", "private") else None,
        detail=detail,
        source_queue=_short(source, 255),
        attempts=readable_attempt(fields),
        publisher=workers.site_of(user_id),
        ending=ending_of(reason, source),
    )


def _deaths_ok(deaths: Any) -> bool:
    """The broker's `x-death`: a list of tables. Anything else is an imitation."""
    return isinstance(deaths, list) and all(isinstance(d, dict) for d in deaths)


def _small_json(body: bytes) -> Any:
    if len(body) > MAX_STORED_BODY:
        return None
    try:
        return sanitize.loads(body)
    except ValueError:
        return None


def fallback_dead_letter(body: bytes, message_id: str | None, error: BaseException) -> DeadLetter:
    """The least a dead letter is stored as when reading it failed: still listed, with why."""
    return DeadLetter(
        id=str(_uuid(message_id) or uuid4()),
        job_id=None,
        reason="unreadable",
        dead_lettered_at=datetime.now(UTC),
        body=binascii.b2a_base64(body[:MAX_STORED_BODY], newline=False).decode(),
        raw_body=body[:MAX_STORED_BODY],
        detail=sanitize.text(f"stored base64-encoded: {type(error).__name__}: {error}")[:2000],
        ending=Ending.NONE,
    )
