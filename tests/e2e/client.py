"""A client that knows only the contract: raw AMQP (aio-pika) and plain HTTP."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import aio_pika
import httpx

TERMINAL = {"rejected", "succeeded", "dead_lettered", "cancelled"}


async def publish_raw(amqp_url: str, bodies: list[bytes], priority: int | None = None) -> None:
    """Publish bodies to `jobs.intake` / `job.submitted`, persistent, with confirms."""
    connection = await aio_pika.connect(amqp_url.split(",")[0])  # a cluster: its first node
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("jobs.intake")
        for body in bodies:
            await exchange.publish(
                aio_pika.Message(
                    body,
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    priority=priority,
                ),
                routing_key="job.submitted",
            )


def job(job_type: str = "noop", **fields: Any) -> dict[str, Any]:
    return {"job_id": str(uuid.uuid4()), "job_type": job_type, **fields}


async def submit(amqp_url: str, *jobs: dict[str, Any]) -> list[str]:
    await publish_raw(amqp_url, [json.dumps(j).encode() for j in jobs])
    return [j["job_id"] for j in jobs]


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def wait_for(
    api: str,
    job_id: str,
    statuses: set[str] | None = None,
    timeout: float = 30,
    token: str | None = None,
) -> dict[str, Any]:
    """Poll GET /jobs/{id} until its status is in `statuses` (default: any terminal)."""
    wanted = statuses or TERMINAL
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=api, timeout=10, headers=_headers(token)) as http:
        while time.monotonic() < deadline:
            response = await http.get(f"/jobs/{job_id}")
            if response.status_code == 200:
                last = response.json()
                if last["status"] in wanted:
                    return last
            await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} not {wanted} in {timeout}s; last view: {last}")


async def events(api: str, job_id: str, token: str | None = None) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=api, timeout=10, headers=_headers(token)) as http:
        response = await http.get(f"/jobs/{job_id}/events")
        if response.status_code == 404:  # not seen yet: no events so far
            return []
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items
