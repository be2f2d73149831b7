"""Request latency: the `hybridq_api_request_seconds` histogram and a Server-Timing header.

A plain ASGI middleware (Starlette's `@app.middleware("http")` runs every request through
an extra task and memory streams). The time is taken when the response starts, so a
stream (`/jobs/{id}/stream`) counts its time to the first byte, not its whole life.

Server-Timing has two parts: `app` (the whole time in this service) and `db` (the part of
it spent in the database reads: waiting for a pooled connection, the statement, its
rows), so a slow answer says whether the database or this process was waiting.
"""

from __future__ import annotations

import time

from services.status.adapters.queries import DatabaseTime
from services.status.entrypoints.http.limits import ASGIApp, Message, Receive, Scope, Send
from shared.metrics import API_LATENCY


class Timing:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        database = DatabaseTime.start()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                seconds = time.perf_counter() - started
                route = getattr(scope.get("route"), "path", "unmatched")
                API_LATENCY.labels(scope["method"], route, str(message["status"])).observe(seconds)
                # the time spent in this service, apart from the network and the client
                headers = list(message.get("headers", []))
                timing = f"app;dur={seconds * 1000:.1f}, db;dur={database.seconds * 1000:.1f}"
                headers.append((b"server-timing", timing.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, timed_send)
