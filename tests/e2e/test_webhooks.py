"""Issue 24, webhooks end to end through the real processes (router, workers, two status
replicas), broker and database, with a receiver on loopback: registrations of loopback,
link-local and private URLs are refused with 422 and the receiver gets nothing; an allowed
host gets every terminal event of 200 jobs, signed, while it answers 500 to a third of the
calls and is down for 20 s, with a status replica killed meanwhile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.stack import Stack
from tests.e2e.client import wait_for
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.connected
ADMIN = "webhook-admin-token"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
ALLOWED = "127.0.0.2"  # loopback too: on Linux all of 127.0.0.0/8 answers locally


@pytest.fixture(scope="module")
def webhook_stack(
    stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    env = {
        **stack_env,
        "ADMIN_TOKEN": ADMIN,
        "WEBHOOK_ALLOWED_HOSTS": ALLOWED,
        "WEBHOOK_RETRY_BASE_SECONDS": "0.2",
        "WEBHOOK_RETRY_MAX_SECONDS": "2",
        "WEBHOOK_LEASE_SECONDS": "11",
        "WEBHOOK_POLL_SECONDS": "0.2",
    }
    logs: Path = tmp_path_factory.mktemp("webhook-logs")
    stack = Stack(env, logs)
    stack.start("router", "public_worker", "private_worker")
    stack.start("status", replicas=2)
    try:
        stack.wait_ready(timeout=120)  # a shared machine: start-up may be slow
        yield stack
    finally:
        stack.stop()


async def test_internal_urls_are_refused_and_get_nothing(webhook_stack: Stack) -> None:
    receiver = await Receiver().start()
    refused = [
        receiver.url(),  # 127.0.0.1, not allowed
        receiver.url(host="localhost"),  # a name resolving to loopback
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://[::1]:9/hook",
        "ftp://example.com/hook",
    ]
    try:
        async with httpx.AsyncClient(base_url=webhook_stack.api, headers=AUTH) as http:
            for url in refused:
                answer = await http.post("/webhooks", json={"url": url})
                assert answer.status_code == 422, (url, answer.text)
                assert answer.json()["errors"][0]["field"] == "url"
            assert (
                "WEBHOOK_ALLOWED_HOSTS"
                in (await http.post("/webhooks", json={"url": receiver.url()})).json()["detail"]
            )
            assert (await http.get("/webhooks")).json()["items"] == []
            without_admin = await http.post(
                "/webhooks", json={"url": receiver.url()}, headers={"Authorization": ""}
            )
            assert without_admin.status_code in (401, 403)
            job = await http.post("/jobs", json={"job_type": "noop"})
            await wait_for(webhook_stack.api, job.json()["job_id"], token=ADMIN)
        await asyncio.sleep(1)
    finally:
        await receiver.stop()
    assert receiver.calls == []


@pytest.mark.timeout(300)
async def test_every_terminal_event_of_200_jobs_arrives_signed_through_500s_an_outage_and_a_killed_replica(  # noqa: E501
    webhook_stack: Stack,
) -> None:
    receiver = await Receiver(host=ALLOWED, fail_every=3).start()
    async with httpx.AsyncClient(base_url=webhook_stack.api, headers=AUTH, timeout=30) as http:
        created = await http.post("/webhooks", json={"url": receiver.url()})
        assert created.status_code == 201, created.text
        hook = created.json()
        assert len(hook["secret"]) >= 32
        jobs = []
        for i in range(200):
            spec = {"job_type": "noop", "target_cloud": "public" if i % 2 else "private"}
            answer = await http.post("/jobs", json=spec)
            assert answer.status_code == 202
            jobs.append(answer.json()["job_id"])
            if i == 60:
                await receiver.stop()  # down for 20 s
                down_since = time.monotonic()
                webhook_stack.kill("status#2")  # with whatever it had claimed
        await asyncio.sleep(max(0.0, 20 - (time.monotonic() - down_since)))
        await receiver.start()
        deadline = time.monotonic() + 180
        while {c.event["job_id"] for c in receiver.delivered()} != set(jobs):
            assert time.monotonic() < deadline, "not every job's terminal event arrived"
            await asyncio.sleep(0.5)
        log = await http.get(f"/webhooks/{hook['webhook_id']}/deliveries", params={"limit": 500})
        one_job = await http.get(
            f"/webhooks/{hook['webhook_id']}/deliveries", params={"job_id": jobs[0]}
        )
    await receiver.stop()
    delivered = receiver.delivered()
    assert all(c.signed_by(hook["secret"]) for c in receiver.calls)
    assert all(c.headers["x-hybridq-event-id"] == c.event["event_id"] for c in receiver.calls)
    assert {c.event["type"] for c in delivered} == {"JobSucceeded"}
    assert any(c.answered == 500 for c in receiver.calls)
    attempts = log.json()["items"]
    assert {a["outcome"] for a in attempts} >= {"delivered", "retrying"}
    assert any(a["error"] for a in attempts)  # refused connections while it was down
    assert {a["job_id"] for a in one_job.json()["items"]} == {jobs[0]}
