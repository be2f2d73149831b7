"""Making hostile content storable: Postgres text and jsonb refuse some of what JSON allows.

A NUL (`\\u0000`) or a lone surrogate is valid JSON but cannot be stored in a text or
jsonb column; a document nested thousands deep passes some parsers and not others. What
the status store keeps of such content is a readable, lossy copy (the offending characters
replaced by U+FFFD, depth cut with a marker); a dead letter keeps its exact raw bytes
beside it (`dead_letters.raw_body`).
"""

from __future__ import annotations

import base64
import json
import math
from datetime import date, datetime
from typing import Any

REPLACEMENT = "\ufffd"
MAX_DEPTH = 64
"""Deeper than any real hybridq message; beyond it the store keeps a marker."""
TOO_DEEP = "(nested too deep)"


def text(value: str) -> str:
    """A string Postgres can store: no NUL, no lone surrogate."""
    if "\x00" in value:
        value = value.replace("\x00", REPLACEMENT)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", errors="replace").decode("utf-8")
    return value


def scrub(value: Any, depth: int = 0) -> Any:
    """A JSON-like value with every string (keys included) storable, depth bounded."""
    if depth > MAX_DEPTH:
        return TOO_DEEP
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {text(str(k)): scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, depth + 1) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # jsonb has no NaN or Infinity
    if value is None or isinstance(value, bool | int):
        return value
    return text(str(value))


def loads(body: bytes) -> Any:
    """Parse JSON from untrusted bytes; ValueError for anything that is not clean JSON."""
    try:
        return json.loads(body.decode("utf-8"))
    except RecursionError as exc:
        raise ValueError("JSON nested deeper than the parser allows") from exc


def body_text(body: bytes, limit: int) -> str:
    """A readable copy of a raw body for a text column: decoded, storable, at most `limit`."""
    return text(body[:limit].decode("utf-8", errors="replace"))
