"""Live streams (server-sent events): one job's, and the global event feed's, bounded so no
client can starve the projection.

Three bounds: a cap on open streams per process (MAX_STREAMS, 429 past it); a stream
ends on its own (an unknown job after STREAM_UNKNOWN_SECONDS, any job after
STREAM_IDLE_SECONDS without a new event); and a stream holds no database connection
between polls (each poll borrows one from the pool for two short reads and returns it).
The feed's stream (`follow_feed`) shares the cap and holds no connection between polls
either; it does not end while idle (heartbeat comments keep it open through proxies), and
a client that reconnects with `Last-Event-ID` goes on from its last event.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine
from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from services.status.adapters import queries
from services.status.domain.views import TERMINAL
from shared.settings import StatusSettings


class StreamSlots:
    """How many streams this process has open, against its cap."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def acquire(self) -> bool:
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1


class BoundedStream(EventSourceResponse):
    """An SSE response that gives its slot back however it ends (done, client gone,
    error), even if its generator never started."""

    def __init__(
        self,
        content: AsyncIterator[dict[str, str]],
        release: Callable[[], None],
        ping: float | None = None,
    ):
        """`ping`: seconds between heartbeat comments (sse-starlette's default without)."""
        super().__init__(content, ping=ping)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def _end(**fields: Any) -> dict[str, str]:
    return {"event": "end", "data": json.dumps(fields)}


async def follow(
    reads: AsyncEngine, settings: StatusSettings, job_id: UUID, request: Request
) -> AsyncIterator[dict[str, str]]:
    sent: set[str] = set()
    started = last_news = time.monotonic()
    while not await request.is_disconnected():
        # the view first: events and view commit together, so a history read after a
        # terminal view holds every event up to the end
        job = await queries.get_job(reads, job_id)
        for event in await queries.job_history(reads, job_id):
            if event["event_id"] not in sent:
                sent.add(event["event_id"])
                last_news = time.monotonic()
                yield {"event": event["type"], "data": json.dumps(event)}
        now = time.monotonic()
        if job is not None and job.status in TERMINAL:
            yield _end(status=job.status.value)
            return
        if job is None and not sent and now - started >= settings.stream_unknown_seconds:
            yield _end(status="unknown")
            return
        if now - last_news >= settings.stream_idle_seconds:
            yield _end(status=job.status.value if job else "unknown", idle=True)
            return
        await asyncio.sleep(settings.stream_poll_seconds)


async def follow_feed(
    reads: AsyncEngine,
    settings: StatusSettings,
    request: Request,
    *,
    after: tuple[int, int],
    types: list[str],
    job_type: str | None,
    page: int = 500,
) -> AsyncIterator[dict[str, str]]:
    """Every event after `after` (with the filters), each with `id:` its feed cursor,
    then each new one as it is recorded (queries.event_feed: none skipped or repeated)."""
    position = after
    while not await request.is_disconnected():
        items, position = await queries.event_feed(
            reads, after=position, limit=page, types=types, job_type=job_type
        )
        for at, event in items:
            yield {
                "id": queries.feed_cursor(*at),
                "event": event["type"],
                "data": json.dumps(event),
            }
        if len(items) < page:
            await asyncio.sleep(settings.stream_poll_seconds)
