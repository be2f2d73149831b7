"""The global event feed: `GET /events` (pages along a cursor) and `GET /events/stream`
(the same as server-sent events, resumed with `Last-Event-ID`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request
from sse_starlette.sse import EventSourceResponse

from services.status.adapters import queries
from services.status.entrypoints.http.auth import Reader
from services.status.entrypoints.http.deps import Res
from services.status.entrypoints.http.errors import problems
from services.status.entrypoints.http.schemas import EventPage
from services.status.entrypoints.http.streams import BoundedStream, follow_feed
from shared.contracts.events import EVENT_TYPES

router = APIRouter(tags=["events"])
MAX_PAGE = 1000
TYPE_NAMES: tuple[str, ...] = tuple(t.model_fields["type"].default for t in EVENT_TYPES)

TypeFilter = Annotated[
    list[Annotated[str, Query(max_length=200)]] | None,
    Query(
        alias="type",
        description=f"event types (repeated or comma-separated): {', '.join(TYPE_NAMES)}",
    ),
]
JobTypeFilter = Annotated[
    str | None,
    Query(max_length=64, pattern=r"^[^\x00]*$", description="only events of jobs of this type"),
]
Cursor = Annotated[str | None, Query(max_length=512, description="a `next_cursor` (or an `id:`)")]
ERRORS: dict[int | str, dict[str, Any]] = problems(
    422, 503, _422="an invalid cursor, type or limit", _503="the database did not answer"
)


def _types(given: list[str] | None) -> list[str]:
    names = [n.strip() for item in given or [] for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in TYPE_NAMES]
    if unknown:
        message = f"unknown event type {unknown[0]!r}; one of {', '.join(TYPE_NAMES)}"
        raise HTTPException(
            422, {"detail": message, "errors": [{"field": "type", "message": message}]}
        )
    return names


def _position(cursor: str | None, field: str) -> tuple[int, int]:
    if not cursor:
        return queries.FEED_START
    try:
        return queries.feed_position(cursor)
    except queries.BadCursor as exc:
        raise HTTPException(
            422, {"detail": str(exc), "errors": [{"field": field, "message": str(exc)}]}
        ) from exc


@router.get("/events", response_model=EventPage, dependencies=[Reader], responses=ERRORS)
async def list_events(
    res: Res,
    after: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    event_type: TypeFilter = None,
    job_type: JobTypeFilter = None,
) -> dict[str, Any]:
    """Every event of every job, in the order the status service recorded them. Pass
    `next_cursor` back as `after` for the next page: along it no event is skipped or
    repeated, while events keep being recorded; a page shorter than `limit` means
    "nothing more yet" (its `next_cursor` is where to ask again)."""
    position = _position(after, "after")
    items, next_position = await queries.event_feed(
        res.reads, after=position, limit=limit, types=_types(event_type), job_type=job_type
    )
    return {"items": [e for _, e in items], "next_cursor": queries.feed_cursor(*next_position)}


@router.get(
    "/events/stream",
    dependencies=[Reader],
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "server-sent events: `id:` the event's cursor, `event:` its type, "
            "`data:` the event's JSON; a comment line every STREAM_HEARTBEAT_SECONDS",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **problems(429, _429="too many open streams (MAX_STREAMS)"),
        **ERRORS,
    },
)
async def stream_events(
    res: Res,
    request: Request,
    after: Cursor = None,
    event_type: TypeFilter = None,
    job_type: JobTypeFilter = None,
    last_event_id: Annotated[
        str | None,
        Header(max_length=512, description="the `id:` of the last event received: resume"),
    ] = None,
) -> EventSourceResponse:
    """The feed of `GET /events` as it grows. A client that reconnects with
    `Last-Event-ID` (browsers' EventSource do) gets every event after that one, none
    twice; it wins over `after`. 429 when MAX_STREAMS streams are open on this process."""
    if last_event_id:
        position = _position(last_event_id, "Last-Event-ID")
    else:
        position = _position(after, "after")
    types = _types(event_type)
    if not res.streams.acquire():
        raise HTTPException(429, f"too many open streams (at most {res.streams.limit})")
    stream = follow_feed(
        res.reads, res.settings, request, after=position, types=types, job_type=job_type
    )
    return BoundedStream(
        stream, release=res.streams.release, ping=res.settings.stream_heartbeat_seconds
    )
