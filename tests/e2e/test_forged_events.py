"""A worker's user speaks only for its site, whatever the deployment names the users.

The broker users are applied from deploy/rabbitmq/definitions.json with a suffix (as a
deployment names them: `hybridq-public-worker-prod-…`), and PUBLIC_WORKER_USER /
PRIVATE_WORKER_USER name them on every service. The public worker's user then forges the
end of a private job, in an event batch on its own routing key (`events.public`, which its
topic permissions allow): the status service dead-letters that event as `forbidden` and
the job's view does not end. Real broker, database and service processes.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest

from devtools.stack import Stack
from shared import topology
from shared.contracts import batches
from shared.contracts import events as ev
from shared.contracts.jobs import Site
from tests.broker_users import OPERATOR, SERVICE_USERS, applied_definitions, url
from tests.conftest import free_port
from tests.e2e.client import events, job, submit, wait_for

pytestmark = pytest.mark.connected
SUFFIX = f"-prod-{uuid.uuid4().hex[:6]}"
PUBLIC_WORKER = SERVICE_USERS["public_worker"]


@pytest.fixture(scope="module")
def vhost(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with applied_definitions(tmp_path_factory.mktemp("secrets"), SUFFIX) as name:
        yield name


@pytest.fixture
def stack(vhost: str, database_url: str, tmp_path: Path) -> Iterator[Stack]:
    """The router and the status service, each as its own user; no worker runs, so a
    private job stays queued unless something ends it."""
    env = {
        "PUBLIC_WORKER_USER": f"{PUBLIC_WORKER}{SUFFIX}",
        "PRIVATE_WORKER_USER": f"{SERVICE_USERS['private_worker']}{SUFFIX}",
        "DATABASE_URL": database_url,
        "STATUS_HTTP_PORT": str(free_port()),
        "AMQP_URL": url(vhost, SUFFIX, OPERATOR),
    }
    per_service = {
        name: {"AMQP_URL": url(vhost, SUFFIX, SERVICE_USERS[name])} for name in ("router", "status")
    }
    running = Stack(env, tmp_path / "logs", per_service=per_service)
    running.start("router", "status")
    try:
        running.wait_ready()
        yield running
    finally:
        codes = running.stop()
    assert set(codes.values()) == {0}, f"see {tmp_path / 'logs'}"


async def publish_as_public_worker(vhost: str, *forged: ev.Event) -> None:
    """One event batch on `events.public`, published by the public worker's user with its
    validated `user_id`, as a compromised public worker could."""
    (body, _), *_ = batches.encode(forged)
    connection = await aio_pika.connect(url(vhost, SUFFIX, PUBLIC_WORKER))
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.EVENTS.name, ensure=False)
        message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            user_id=f"{PUBLIC_WORKER}{SUFFIX}",
        )
        await exchange.publish(message, batches.routing_key(Site.PUBLIC.value), mandatory=True)


async def forbidden_letters(api: str, job_id: str, count: int) -> list[dict[str, Any]]:
    """The job's dead letters with reason `forbidden`, once `count` are listed (30 s)."""
    found: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=api, timeout=10) as http:
        for _ in range(150):
            items: list[dict[str, Any]] = (await http.get("/dead-letters")).json()["items"]
            found = [d for d in items if d["job_id"] == job_id and d["reason"] == "forbidden"]
            if len(found) >= count:
                break
            await asyncio.sleep(0.2)
    return found


async def test_the_public_workers_user_cannot_end_a_private_job(vhost: str, stack: Stack) -> None:
    (job_id,) = await submit(url(vhost, SUFFIX, OPERATOR), job("noop", target_cloud="private"))
    queued = await wait_for(stack.api, job_id, {"queued"})
    assert queued["site"] == "private"

    private_id = uuid.UUID(job_id)
    await publish_as_public_worker(
        vhost,
        ev.JobStarted(job_id=private_id, site=Site.PRIVATE, attempt=1, worker="forger"),
        ev.JobSucceeded(job_id=private_id, site=Site.PRIVATE, attempt=1, duration_seconds=1),
    )

    letters = await forbidden_letters(stack.api, job_id, 2)
    assert sorted(json.loads(d["body"])["type"] for d in letters) == ["JobStarted", "JobSucceeded"]
    view = await wait_for(stack.api, job_id, {"queued"})
    assert view["finished_at"] is None
    assert [e["type"] for e in await events(stack.api, job_id)] == ["JobSubmitted", "JobRouted"]
