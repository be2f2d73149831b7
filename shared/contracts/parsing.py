"""Reading a client's JobSubmitted from raw bytes, with a reason for every refusal."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from shared.contracts.events import FieldError
from shared.contracts.jobs import MAX_MESSAGE_BYTES, SCHEMA_VERSION, JobSubmitted
from shared.dead_letters import DeadLetterReason
from shared.errors import UnprocessableMessage


def field_errors(error: ValidationError) -> list[FieldError]:
    """Pydantic errors as `{field, message}` pairs, fields as dotted paths."""
    return [
        FieldError(
            field=".".join(str(p) for p in e["loc"]) or "(message)",
            message=e["msg"],
        )
        for e in error.errors()
    ]


READ_ID_LIMIT_BYTES = 16 * 1024 * 1024


def readable_job_id(data: Any) -> str | None:
    if isinstance(data, dict):
        try:
            return str(UUID(str(data.get("job_id"))))
        except ValueError:
            return None
    return None


def readable_attempt(data: Any) -> int:
    """The attempt a message's body says it is for, as a dead letter's `attempts`: an
    integer in range, else 0. The worker and the status service both read it so (one
    ending, the same from either: shared/dead_letters.py)."""
    attempt = data.get("attempt") if isinstance(data, dict) else None
    if isinstance(attempt, int) and not isinstance(attempt, bool) and 0 <= attempt < 10_000:
        return attempt
    return 0


def _job_id_of_oversize(body: bytes) -> str | None:
    """Read the job_id of an oversize message, so the job can be rejected by id."""
    if len(body) > READ_ID_LIMIT_BYTES:
        return None
    try:
        return readable_job_id(json.loads(body))
    except ValueError:
        return None


class InvalidJob(UnprocessableMessage):
    """A JobSubmitted that fails its schema; carries field errors for JobRejected/422."""

    def __init__(self, detail: str, errors: list[FieldError], job_id: str | None) -> None:
        super().__init__(DeadLetterReason.SCHEMA, detail, job_id)
        self.errors = errors


def parse_job_submitted(body: bytes) -> JobSubmitted:
    """Parse and validate; raise UnprocessableMessage (or InvalidJob) saying why not."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise UnprocessableMessage(
            DeadLetterReason.OVERSIZE,
            f"message is {len(body)} bytes; the limit is 256 KiB",
            _job_id_of_oversize(body),
        )
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise UnprocessableMessage(DeadLetterReason.MALFORMED_JSON, f"not JSON: {exc}") from exc
    job_id = readable_job_id(data)
    if isinstance(data, dict) and data.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise UnprocessableMessage(
            DeadLetterReason.UNKNOWN_SCHEMA_VERSION,
            f"schema_version {data.get('schema_version')!r} is not supported (expected 1)",
            job_id,
        )
    try:
        return JobSubmitted.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc)
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
        raise InvalidJob(f"invalid JobSubmitted: {detail}", errors, job_id) from exc
