"""Router replicas as real processes on a test's own vhost and database, and a probe that
counts what they dispatch (a raw consumer on the work queues)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aio_pika
import httpx

from devtools import environment
from devtools.stack import Stack
from tests.conftest import free_port


async def eventually(
    check: Callable[[], bool], timeout: float, what: str, every: float = 0.3
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(every)
    raise AssertionError(f"not {what} within {timeout}s")


def router_stack(amqp_url: str, database_url: str, log_dir: Path, *names: str, **env: str) -> Stack:
    stack = Stack(
        {
            "AMQP_URL": amqp_url,
            "DATABASE_URL": database_url,
            "ROUTER_CLAIM_LEASE_SECONDS": "3",
            "LOG_LEVEL": "INFO",
            **env,
        },
        log_dir,
    )
    for name in names:
        stack.per_service[name] = {"HEALTH_PORT": str(free_port())}
    return stack


def readyz(stack: Stack, name: str) -> int:
    port = stack.per_service[name]["HEALTH_PORT"]
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=3).status_code
    except httpx.HTTPError:
        return 0


async def wait_ready(stack: Stack, *names: str, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        for name in names:
            while await asyncio.to_thread(readyz, stack, name) != 200:
                assert stack.processes[name].poll() is None, f"{name} exited"
                await asyncio.sleep(0.2)


def log_lines(stack: Stack, name: str, msg: str) -> list[dict[str, object]]:
    lines = []
    for raw in (stack.log_dir / f"{name}.log").read_text().splitlines():
        if raw.startswith("{"):
            line = json.loads(raw)
            if line.get("msg") == msg:
                lines.append(line)
    return lines


class Dispatched:
    """Counts every message the router put on `jobs.private` / `jobs.public`, by job_id."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None

    async def start(self, amqp_url: str) -> None:
        self._connection = await aio_pika.connect_robust(amqp_url)
        channel = await self._connection.channel()
        for name in ("jobs.private", "jobs.public"):
            queue = await channel.get_queue(name)
            await queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.counts[json.loads(message.body)["job_id"]] += 1

    async def wait_for(self, job_ids: list[str], timeout: float) -> None:
        try:
            await eventually(lambda: all(j in self.counts for j in job_ids), timeout, "dispatched")
        except AssertionError as exc:
            missing = [j for j in job_ids if j not in self.counts]
            raise AssertionError(f"{len(missing)} not dispatched, e.g. {missing[:3]}") from exc

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()


def queue_messages(amqp_url: str, queue: str) -> int:
    """Ready + unacked messages of `queue` (management API)."""
    vhost = unquote(urlsplit(amqp_url).path.lstrip("/"))
    with httpx.Client(base_url=environment.MANAGEMENT, auth=environment.ADMIN) as http:
        for _ in range(20):  # a queue declared a moment ago may not be listed yet
            response = http.get(f"/api/queues/{vhost}/{queue}")
            if response.status_code != 404:
                break
            time.sleep(0.5)
        response.raise_for_status()
        return int(response.json().get("messages", 0))


def set_allow_connections(database_url: str, allowed: bool) -> None:
    """Make the test's own database refuse (or accept) new connections, and cut the
    ones it has: what a database that is starting up or shut for maintenance does."""
    name = database_url.rsplit("/", 1)[1]
    assert name.startswith("hybridq_test_"), "only a test's own database"
    value = "true" if allowed else "false"
    sql = f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {value}'
    if not allowed:
        sql += f"; SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    subprocess.run(
        ["psql", environment.PG_ADMIN_DSN, "-v", "ON_ERROR_STOP=1", "-qc", sql],
        check=True,
        capture_output=True,
    )
