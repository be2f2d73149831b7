"""Liveness and readiness probes (`/healthz`, `/readyz`) for the router and the workers.

Served by a tiny HTTP server on the service's own event loop (HEALTH_PORT), not on a
thread: a loop that is blocked cannot answer, so a stuck process fails its liveness
probe instead of looking healthy. `/readyz` runs the service's checks (broker
connection; the router's database) on every request, each with a short timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

from faststream import FastStream
from faststream.rabbit import RabbitBroker

log = logging.getLogger("hybridq.health")

Check = Callable[[], Awaitable[bool]]
CHECK_TIMEOUT_SECONDS = 2.0
MAX_REQUEST_BYTES = 8192


def broker_check(broker: RabbitBroker) -> Check:
    """Ready while the broker connection is up (FastStream's public `ping`)."""

    async def connected() -> bool:
        return await broker.ping(timeout=1.0)

    return connected


async def _passes(check: Check) -> bool:
    try:
        return await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
    except Exception:
        return False


class HealthServer:
    def __init__(self, checks: Mapping[str, Check], host: str, port: int) -> None:
        self.checks = dict(checks)
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        log.info("health probes listening", extra={"port": self.port})

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def failing(self) -> list[str]:
        results = await asyncio.gather(*(_passes(check) for check in self.checks.values()))
        return [name for name, ok in zip(self.checks, results, strict=True) if not ok]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), CHECK_TIMEOUT_SECONDS)
            status, body = await self._answer(request[:MAX_REQUEST_BYTES])
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, request_line: bytes) -> tuple[str, bytes]:
        parts = request_line.split()
        path = parts[1].split(b"?")[0] if len(parts) >= 2 else b""
        if path == b"/healthz":
            return "200 OK", b"ok\n"
        if path == b"/readyz":
            failing = await self.failing()
            if failing:
                return "503 Service Unavailable", f"not ready: {', '.join(failing)}\n".encode()
            return "200 OK", b"ready\n"
        return "404 Not Found", b"not found\n"


def attach(
    app: FastStream, checks: Mapping[str, Check], host: str, port: int | None
) -> HealthServer | None:
    """Serve the probes for `app`'s lifetime when a port is configured (HEALTH_PORT).

    Liveness answers from start-up on. Readiness also needs the app to have *started*
    (topology declared, consumers attached) and not be draining: a client that waits for
    readiness and then publishes must find the queues there.
    """
    if not port:
        return None
    started = asyncio.Event()
    server = HealthServer({"started": _flag(started), **checks}, host, port)

    async def mark_started() -> None:
        started.set()

    async def mark_draining() -> None:
        started.clear()

    app.on_startup(server.start)
    app.after_startup(mark_started)
    app.on_shutdown(mark_draining)
    app.after_shutdown(server.stop)
    return server


def _flag(event: asyncio.Event) -> Check:
    async def is_set() -> bool:
        return event.is_set()

    return is_set
