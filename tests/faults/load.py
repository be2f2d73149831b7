"""The load generator: jobs submitted while faults are injected, every confirm recorded.

Half the jobs go as raw AMQP (persistent, mandatory, publisher confirms), half through
`POST /jobs`. A job counts as *confirmed* only when the broker confirmed it or the API
answered 202; a publish that errored or timed out after it may have left is
*indeterminate* (it may or may not run; it must never run twice or end twice either).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import httpx

PUBLISH_TIMEOUT = 5.0

# (job fields, terminal status expected) -- retries are generous so that the attempts a
# fault interrupts never exhaust a job that should succeed
MIX: list[tuple[dict[str, Any], str]] = [
    ({"job_type": "noop"}, "succeeded"),
    ({"job_type": "noop", "target_cloud": "public"}, "succeeded"),
    ({"job_type": "sleep", "params": {"seconds": 0.5}}, "succeeded"),
    ({"job_type": "sleep", "params": {"seconds": 0.5}, "target_cloud": "public"}, "succeeded"),
    ({"job_type": "transcode", "params": {"work_ms": 50}}, "succeeded"),
    ({"job_type": "flaky", "params": {"fail_times": 1}}, "succeeded"),
    ({"job_type": "noop", "delay_seconds": 1}, "succeeded"),
    ({"job_type": "fail", "params": {"error": "on purpose"}, "max_attempts": 1}, "dead_lettered"),
]
RETRIES = 10


@dataclass
class Submitted:
    job_id: str
    body: dict[str, Any]
    expected: str
    via: str


@dataclass
class Load:
    """Every job this run tried to submit, and what the client was told."""

    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    confirmed: dict[str, Submitted] = field(default_factory=dict)
    indeterminate: dict[str, Submitted] = field(default_factory=dict)
    refused: dict[str, Submitted] = field(default_factory=dict)  # 503 (e.g. disk alarm)
    errors: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)  # a 5xx but 503: never allowed

    def new_job(self, via: str, rng: random.Random) -> Submitted:
        fields, expected = rng.choice(MIX)
        params = {**fields.get("params", {}), "run": self.run}
        body = {"max_attempts": RETRIES, **fields, "params": params}
        job_id = str(uuid.uuid4())
        return Submitted(job_id, {"job_id": job_id, **body}, expected, via)

    @property
    def attempted(self) -> set[str]:
        return {*self.confirmed, *self.indeterminate, *self.refused}


class AmqpPublisher:
    """A raw client: one connection, one confirming channel, reconnecting after a fault."""

    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def _ready(self) -> aio_pika.abc.AbstractExchange:
        if self._exchange is None or self._connection is None or self._connection.is_closed:
            await self.close()
            self._connection = await asyncio.wait_for(
                aio_pika.connect(self.amqp_url), PUBLISH_TIMEOUT
            )
            channel = await self._connection.channel(publisher_confirms=True)
            self._exchange = await channel.get_exchange("jobs.intake", ensure=False)
        return self._exchange

    async def publish(self, body: bytes) -> None:
        """Returns once the broker confirmed; raises on anything else."""
        try:
            exchange = await self._ready()
            await asyncio.wait_for(
                exchange.publish(
                    aio_pika.Message(
                        body,
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key="job.submitted",
                    mandatory=True,
                ),
                PUBLISH_TIMEOUT,
            )
        except BaseException:
            self._exchange = None
            raise

    async def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._connection.close(), 2)
        self._connection = None
        self._exchange = None


async def run_load(
    load: Load,
    amqp_url: str,
    api: Callable[[], str],
    jobs: int,
    seconds: float,
    faults: Callable[[], Awaitable[None]] | None = None,
    seed: int = 0,
) -> None:
    """Submit `jobs` jobs spread over `seconds`, half per path, while `faults` runs."""
    rng = random.Random(seed)
    publisher = AmqpPublisher(amqp_url)
    gap = seconds / max(jobs, 1)

    async def submit_all() -> None:
        async with httpx.AsyncClient(timeout=PUBLISH_TIMEOUT + 5) as http:
            pending = set()
            for i in range(jobs):
                job = load.new_job("amqp" if i % 2 == 0 else "http", rng)
                if job.via == "amqp":
                    await _by_amqp(load, publisher, job)
                else:  # concurrently: a hung POST must not stop the AMQP half
                    pending.add(asyncio.create_task(_by_http(load, http, api(), job)))
                await asyncio.sleep(gap)
            await asyncio.gather(*pending)

    started = time.monotonic()
    try:
        if faults is None:
            await submit_all()
        else:
            await asyncio.gather(submit_all(), faults())
    finally:
        await publisher.close()
    load.errors.append(f"load took {time.monotonic() - started:.1f}s")


async def _by_amqp(load: Load, publisher: AmqpPublisher, job: Submitted) -> None:
    try:
        await publisher.publish(json.dumps(job.body).encode())
    except Exception as exc:
        load.indeterminate[job.job_id] = job
        load.errors.append(f"amqp {job.job_id}: {type(exc).__name__}: {exc}")
        await asyncio.sleep(0.2)
    else:
        load.confirmed[job.job_id] = job


async def _by_http(load: Load, http: httpx.AsyncClient, api: str, job: Submitted) -> None:
    try:
        response = await http.post(f"{api}/jobs", json=job.body)
    except httpx.HTTPError as exc:
        load.indeterminate[job.job_id] = job
        load.errors.append(f"http {job.job_id}: {type(exc).__name__}: {exc}")
        return
    if response.status_code == 202:
        load.confirmed[job.job_id] = job
    elif response.status_code == 503:
        load.refused[job.job_id] = job  # told "not accepted"; it may still have gone out
    else:
        load.indeterminate[job.job_id] = job
        problem = f"http {job.job_id}: {response.status_code} {response.text[:200]}"
        load.errors.append(problem)
        if response.status_code >= 500:
            load.server_errors.append(problem)
