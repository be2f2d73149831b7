"""Live job streams (server-sent events), bounded so no client can starve the projection.

Three bounds: a cap on open streams per process (MAX_STREAMS, 429 past it); a stream
ends on its own (an unknown job after STREAM_UNKNOWN_SECONDS, any job after
STREAM_IDLE_SECONDS without a new event); and a stream holds no database connection
between polls (each poll borrows one from the pool for two short reads and returns it).
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

    def __init__(self, content: AsyncIterator[dict[str, str]], release: Callable[[], None]):
        super().__init__(content)
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
