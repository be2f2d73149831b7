"""Event batches: lifecycle events several to a message (contract v1.2 §3.2).

Every message on `jobs.events` carrying lifecycle events is a batch,
`{"schema_version": 2, "events": [event, ...]}`, 1 to MAX_EVENTS events and at most
MAX_BATCH_BYTES (a single larger event travels alone), routing key `events.<source>`.
A consumer reads each event on its own (`read_batch`): one it cannot read is reported
with its reason next to its readable neighbours. During an upgrade from v1.1 a message
may also hold one bare event (routing key `job.<event>`); `read_batch` takes both forms.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.contracts.events import AnyEvent, Event, parse_event
from shared.dead_letters import DeadLetterReason

BATCH_SCHEMA_VERSION = 2
MAX_EVENTS = 1000
MAX_BATCH_BYTES = 1024 * 1024
ROUTER_SOURCE = "router"
STATUS_SOURCE = "status"
_PREFIX = b'{"schema_version":2,"events":['
_SUFFIX = b"]}"


class EventBatch(BaseModel):
    """Lifecycle events several to a message, in the order their publisher emitted them
    (its schema: what travels on `jobs.events` with routing key `events.<source>`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[2] = 2
    events: Annotated[list[AnyEvent], Field(min_length=1, max_length=MAX_EVENTS)]


def routing_key(source: str) -> str:
    """`events.<source>`: `events.router`, `events.status`, or a site's workers'
    `events.<site>`."""
    return f"events.{source}"


def encode(events: Sequence[Event]) -> Iterator[tuple[bytes, int]]:
    """The bodies of the batches that carry `events`, in order, each with how many events
    it holds: as few messages as the limits allow (MAX_EVENTS events, MAX_BATCH_BYTES), a
    larger single event alone."""
    parts: list[bytes] = []
    size = len(_PREFIX) + len(_SUFFIX)
    for event in events:
        part = event.model_dump_json().encode()
        if parts and (len(parts) == MAX_EVENTS or size + len(part) + 1 > MAX_BATCH_BYTES):
            yield _PREFIX + b",".join(parts) + _SUFFIX, len(parts)
            parts, size = [], len(_PREFIX) + len(_SUFFIX)
        parts.append(part)
        size += len(part) + 1
    if parts:
        yield _PREFIX + b",".join(parts) + _SUFFIX, len(parts)


@dataclass(frozen=True)
class Unreadable:
    """An event of a message that cannot be read: why, and what there is of it."""

    reason: DeadLetterReason
    detail: str
    raw: Any  # the decoded JSON value of the event, or None when the message is unreadable
    job_id: str | None = None


Item = AnyEvent | Unreadable


def read_items(data: Any) -> list[Item]:
    """The events of a decoded message, each read on its own: a batch's events in order,
    or a v1.1 single event. A message that is neither is one `Unreadable`."""
    if isinstance(data, dict) and "events" in data:
        version = data.get("schema_version")
        if version != BATCH_SCHEMA_VERSION:
            return [
                Unreadable(
                    DeadLetterReason.UNKNOWN_SCHEMA_VERSION,
                    f"batch schema_version {version!r} is not supported (expected 2)",
                    data,
                )
            ]
        events = data["events"]
        if not isinstance(events, list) or not events or set(data) != {"schema_version", "events"}:
            detail = "a batch is {schema_version: 2, events: [1 to 1000 events]}"
            return [Unreadable(DeadLetterReason.SCHEMA, detail, data)]
        if len(events) > MAX_EVENTS:
            detail = f"a batch holds at most {MAX_EVENTS} events, not {len(events)}"
            return [Unreadable(DeadLetterReason.SCHEMA, detail, data)]
        return [_event(raw) for raw in events]
    return [_event(data)]


def _event(raw: Any) -> Item:
    if not isinstance(raw, dict):
        return Unreadable(DeadLetterReason.SCHEMA, "an event is a JSON object", raw)
    try:
        return parse_event(raw)
    except (ValidationError, ValueError, RecursionError) as exc:
        return Unreadable(DeadLetterReason.SCHEMA, str(exc)[:2000], raw, _job_id(raw))


def _job_id(raw: Any) -> str | None:
    value = raw.get("job_id") if isinstance(raw, dict) else None
    if not isinstance(value, str):
        return None
    try:
        return str(UUID(value))
    except ValueError:
        return None
