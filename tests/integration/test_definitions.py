"""deploy/rabbitmq/definitions.json: in step with the code, importable, least privilege."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import aiormq
import httpx
import pytest

from devtools import definitions
from devtools.stack import Stack
from tests.broker_users import SERVICE_USERS, applied_definitions, url
from tests.conftest import free_port
from tests.e2e.client import job, submit, wait_for

pytestmark = pytest.mark.connected
ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = ROOT / "deploy" / "rabbitmq" / "definitions.json"


def test_definitions_file_is_generated_from_the_topology() -> None:
    assert DEFINITIONS.read_text() == definitions.render(), (
        "run: python -m devtools.definitions > deploy/rabbitmq/definitions.json"
    )


def test_no_deploy_file_uses_guest() -> None:
    for path in (ROOT / "deploy").rglob("*"):
        if path.is_file():
            assert "guest" not in path.read_text(errors="ignore").lower(), path


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """The definitions applied to a fresh vhost, users suffixed so runs never collide."""
    suffix = f"-{uuid.uuid4().hex[:6]}"
    secrets = tmp_path_factory.mktemp("secrets")
    with applied_definitions(secrets, suffix) as vhost:
        yield vhost, suffix, secrets / "users"


async def _ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    return None


async def consume_refused(amqp_url: str, queue: str) -> bool:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        q = await channel.get_queue(queue, ensure=False)
        try:
            await q.consume(_ignore)
        except aiormq.exceptions.ChannelAccessRefused:
            return True
        return False


@pytest.mark.parametrize(
    ("user", "queue", "refused"),
    [
        ("hybridq-public-worker", "jobs.private", True),
        ("hybridq-public-worker", "jobs.router.intake", True),
        ("hybridq-public-worker", "jobs.dead-letter", True),
        ("hybridq-public-worker", "jobs.public", False),
        ("hybridq-private-worker", "jobs.public", True),
        ("hybridq-private-worker", "jobs.private", False),
        ("hybridq-status", "jobs.router.intake", True),
        ("hybridq-status", "jobs.status.events", False),
        ("hybridq-router", "jobs.router.intake", False),
        ("hybridq-router", "jobs.status.events", True),
    ],
)
async def test_permissions_hold(
    loaded: tuple[str, str, Path], user: str, queue: str, refused: bool
) -> None:
    vhost, suffix, _ = loaded
    assert await consume_refused(url(vhost, suffix, user), queue) is refused


async def test_a_worker_cannot_configure_what_it_does_not_use(
    loaded: tuple[str, str, Path],
) -> None:
    vhost, suffix, _ = loaded
    connection = await aio_pika.connect(url(vhost, suffix, "hybridq-public-worker"))
    async with connection:
        channel = await connection.channel()
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await channel.declare_queue("jobs.status.events", durable=True)


@pytest.mark.parametrize("queue_name", ["jobs.private", "jobs.cancellations", "jobs.router.due"])
async def test_a_public_worker_cannot_delete_what_it_does_not_own(
    loaded: tuple[str, str, Path], queue_name: str
) -> None:
    vhost, suffix, _ = loaded
    connection = await aio_pika.connect(url(vhost, suffix, "hybridq-public-worker"))
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name, ensure=False)
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await queue.delete(if_unused=False, if_empty=False)


async def publish_error(
    amqp_url: str, exchange: str, routing_key: str, user_id: str | None = None
) -> type[Exception] | None:
    """Publish one confirmed message; the broker's refusal, if any."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        target = (
            channel.default_exchange
            if exchange == ""
            else await channel.get_exchange(exchange, ensure=False)
        )
        try:
            await target.publish(aio_pika.Message(b"{}", user_id=user_id), routing_key)
        except aiormq.exceptions.AMQPError as exc:
            return type(exc)
        return None


REFUSED = aiormq.exceptions.ChannelAccessRefused


@pytest.mark.parametrize(
    ("user", "exchange", "routing_key", "error"),
    [
        ("hybridq-public-worker", "jobs.dispatch", "private", REFUSED),
        ("hybridq-public-worker", "jobs.events", "job.cancelled", REFUSED),
        ("hybridq-public-worker", "jobs.events", "job.submitted", REFUSED),
        ("hybridq-public-worker", "jobs.events", "job.redriven", REFUSED),
        ("hybridq-public-worker", "", "jobs.private", REFUSED),  # the default exchange
        ("hybridq-private-worker", "jobs.dispatch", "public", REFUSED),
        ("hybridq-router", "jobs.events", "job.cancelled", REFUSED),
        # event batches: each publisher only its own source's key (contract §3.2)
        ("hybridq-public-worker", "jobs.events", "events.private", REFUSED),
        ("hybridq-public-worker", "jobs.events", "events.status", REFUSED),
        ("hybridq-public-worker", "jobs.events", "events.router", REFUSED),
        ("hybridq-public-worker", "jobs.events", "job.started", REFUSED),  # v1.1's keys: gone
        ("hybridq-router", "jobs.events", "events.status", REFUSED),
        # what they may publish (so the refusals above are about the keys)
        ("hybridq-public-worker", "jobs.dispatch", "public", None),
        ("hybridq-public-worker", "jobs.events", "events.public", None),
        ("hybridq-router", "jobs.events", "events.router", None),
        ("hybridq-status", "jobs.events", "events.status", None),
    ],
)
async def test_publishers_are_limited_to_their_routing_keys(
    loaded: tuple[str, str, Path],
    user: str,
    exchange: str,
    routing_key: str,
    error: type[Exception] | None,
) -> None:
    vhost, suffix, _ = loaded
    assert await publish_error(url(vhost, suffix, user), exchange, routing_key) is error


async def test_a_worker_cannot_publish_as_another_user(loaded: tuple[str, str, Path]) -> None:
    vhost, suffix, _ = loaded
    forged = await publish_error(
        url(vhost, suffix, "hybridq-public-worker"),
        "jobs.events",
        "events.public",
        user_id=f"hybridq-private-worker{suffix}",
    )
    assert forged is aiormq.exceptions.ChannelPreconditionFailed
    own = await publish_error(
        url(vhost, suffix, "hybridq-public-worker"),
        "jobs.events",
        "events.public",
        user_id=f"hybridq-public-worker{suffix}",
    )
    assert own is None


async def park(amqp_url: str, site: str, user_id: str | None = None) -> str:
    """Publish a placed job straight to the router's due path, as a worker could."""
    job_id = str(uuid.uuid4())
    body = json.dumps({"job_id": job_id, "job_type": "noop", "site": site}).encode()
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        delay = await channel.get_exchange("jobs.delay", ensure=False)
        await delay.publish(aio_pika.Message(body, delivery_mode=2, user_id=user_id), "due")
    return job_id


async def test_services_run_with_only_their_own_users(
    loaded: tuple[str, str, Path], database_url: str, tmp_path: Path
) -> None:
    vhost, suffix, _ = loaded
    env = {
        "PUBLIC_WORKER_USER": f"hybridq-public-worker{suffix}",
        "PRIVATE_WORKER_USER": f"hybridq-private-worker{suffix}",
        "DATABASE_URL": database_url,
        "STATUS_HTTP_PORT": str(free_port()),
        "AMQP_URL": url(vhost, suffix, "hybridq-operator"),
    }
    per_service = {
        name: {"AMQP_URL": url(vhost, suffix, user)} for name, user in SERVICE_USERS.items()
    }
    stack = Stack(env, tmp_path / "logs", per_service=per_service)
    stack.start()
    try:
        stack.wait_ready()
        jobs = [
            job("noop", target_cloud="public"),
            job("flaky", params={"fail_times": 1}),
            job("noop", delay_seconds=1),
        ]
        await submit(url(vhost, suffix, "hybridq-operator"), *jobs)
        async with httpx.AsyncClient(base_url=stack.api) as http:
            posted = (await http.post("/jobs", json={"job_type": "noop"})).json()["job_id"]
        for job_id in [*(j["job_id"] for j in jobs), posted]:
            assert (await wait_for(stack.api, job_id))["status"] == "succeeded"
        # a compromised public worker parks private jobs on the delay path (with its
        # validated user_id, or leaving the property out): refused; its own site's runs
        public_worker = url(vhost, suffix, "hybridq-public-worker")
        injected = [
            await park(public_worker, "private", f"hybridq-public-worker{suffix}"),
            await park(public_worker, "private"),
        ]
        allowed = await park(public_worker, "public", f"hybridq-public-worker{suffix}")
        async with httpx.AsyncClient(base_url=stack.api) as http:
            for _ in range(100):
                letters = (await http.get("/dead-letters")).json()["items"]
                refused = [d for d in letters for i in injected if i in str(d["body"])]
                done = (await http.get(f"/jobs/{allowed}/events")).json().get("items", [])
                if len(refused) == 2 and done:
                    break
                await asyncio.sleep(0.2)
            assert [d["reason"] for d in refused] == ["forbidden", "forbidden"]
            for job_id in injected:  # never seen: no event of theirs was projected
                assert (await http.get(f"/jobs/{job_id}/events")).status_code == 404
            assert "JobSucceeded" in [e["type"] for e in done]
        live = await asyncio.to_thread(
            subprocess.run,
            ["rabbitmqctl", "list_connections", "-q", "--no-table-headers", "vhost", "user"],
            capture_output=True,
            text=True,
            check=True,
        )
        users = {
            line.split("\t")[1] for line in live.stdout.splitlines() if line.split("\t")[0] == vhost
        }
        assert users == {u + suffix for u in SERVICE_USERS.values()}
    finally:
        codes = stack.stop()
    assert set(codes.values()) == {0}, f"see {tmp_path / 'logs'}"
