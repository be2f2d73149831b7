"""The status service as its own process (`python -m services.status`) on a throw-away
vhost and database, with tokens set and small stream limits, for the HTTP API's tests.

Its broker connection goes through a TcpProxy so a test can cut it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import httpx
import pytest

from devtools.stack import Stack
from tests.conftest import free_port
from tests.tcp_proxy import TcpProxy

READ, ADMIN = "reader-token-abc", "admin-token-xyz"
MAX_STREAMS = 3
JSON = {"content-type": "application/json"}


class StallingProxy(TcpProxy):
    """A proxy that can also stall: connections stay open but no byte moves, as with a
    broker blocked by a resource alarm (publishes are never confirmed)."""

    stalled = False

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await reader.read(65536):
                while self.stalled:  # noqa: ASYNC110 (set from the test's thread)
                    await asyncio.sleep(0.05)
                writer.write(data)
                await writer.drain()
        writer.close()
        self._writers.discard(writer)


@pytest.fixture(scope="module")
def amqp_proxy() -> Iterator[StallingProxy]:
    proxy = StallingProxy(5672, free_port()).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def status(
    amqp_url: str, database_url: str, amqp_proxy: TcpProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    parts = urlsplit(amqp_url)
    via_proxy = urlunsplit(parts._replace(netloc=f"guest:guest@127.0.0.1:{amqp_proxy.listen_port}"))
    env = {
        "AMQP_URL": via_proxy,
        "DATABASE_URL": database_url,
        "STATUS_HTTP_PORT": str(free_port()),
        "API_TOKEN": READ,
        "ADMIN_TOKEN": ADMIN,
        "MAX_STREAMS": str(MAX_STREAMS),
        "STREAM_UNKNOWN_SECONDS": "1",
        "STREAM_IDLE_SECONDS": "6",
        "PUBLISH_TIMEOUT_SECONDS": "2",
        "LOG_LEVEL": "INFO",
    }
    logs: Path = tmp_path_factory.mktemp("status-api-logs")
    stack = Stack(env, logs)
    stack.start("status")
    try:
        stack.wait_ready()
        yield stack
    finally:
        assert stack.stop() == {"status": 0}, f"status did not exit 0; logs in {logs}"


def client(stack: Stack, token: str | None = READ, timeout: float = 10) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=stack.api, headers=headers, timeout=timeout)


async def publish_event(amqp_url: str, event: dict[str, Any]) -> None:
    """Put a lifecycle event on `jobs.events` as a router or worker would."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("jobs.events")
        await exchange.publish(
            aio_pika.Message(
                json.dumps(event).encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=event["event_id"],
            ),
            routing_key=f"job.{event['type'].removeprefix('Job').lower()}",
        )


def submitted_event(job_id: str | None = None) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "job_id": job_id or str(uuid.uuid4()),
        "type": "JobSubmitted",
        "occurred_at": "2026-01-01T00:00:00+00:00",
        "job_type": "noop",
    }
