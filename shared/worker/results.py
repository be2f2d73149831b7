"""What a handler may return: a JSON object of at most 64 KiB (contract section 6)."""

from __future__ import annotations

import json
from typing import Any

from shared.errors import InvalidResult

MAX_RESULT_BYTES = 64 * 1024


def result_json(value: object) -> str:
    """The result as JSON text, or InvalidResult (permanent: running again returns the same)."""
    if not isinstance(value, dict):
        raise InvalidResult(f"the handler returned {type(value).__name__}, not a JSON object")
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidResult(f"the handler's result is not JSON: {exc}") from exc
    size = len(text.encode())
    if size > MAX_RESULT_BYTES:
        raise InvalidResult(
            f"the handler's result is {size} bytes of JSON, over the limit of "
            f"{MAX_RESULT_BYTES} bytes (64 KiB)"
        )
    return text


def checked_result(value: object) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(result_json(value))
    return result
