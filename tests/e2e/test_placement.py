"""Issue 3: every placement rule fires on the real broker; residency holds twice."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import aio_pika
import httpx
import pytest

from devtools.stack import Stack
from tests.brokers import first_url
from tests.conftest import free_port
from tests.e2e.client import events, job, submit, wait_for
from tests.fake_batch_api import FakeBatchApi

pytestmark = pytest.mark.connected


@pytest.mark.parametrize(
    ("fields", "site", "rule"),
    [
        ({"data_classification": "confidential"}, "private", "residency"),
        ({"target_cloud": "public"}, "public", "explicit"),
        ({"job_type": "8k_transcode", "params": {"work_ms": 10}}, "public", "job_type"),
        ({}, "private", "default"),
    ],
)
async def test_each_rule_places_and_explains(
    stack: Stack, fields: dict[str, object], site: str, rule: str
) -> None:
    spec = job(**{"job_type": "noop", **fields})  # type: ignore[arg-type]
    await submit(stack.env["AMQP_URL"], spec)
    view = await wait_for(stack.api, spec["job_id"])
    assert (view["status"], view["site"], view["rule"]) == ("succeeded", site, rule)
    assert view["reason"]
    routed = next(e for e in await events(stack.api, spec["job_id"]) if e["type"] == "JobRouted")
    assert (routed["site"], routed["rule"], routed["reason"]) == (site, rule, view["reason"])


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"data_classification": "confidential", "target_cloud": "public"}, "target_cloud"),
        ({"target_cloud": "hybrid"}, "target_cloud"),
        ({"job_type": "no_such_type"}, "job_type"),
    ],
)
async def test_policy_and_placement_errors_reject_the_job(
    stack: Stack, fields: dict[str, object], field: str
) -> None:
    spec = job(**{"job_type": "noop", **fields})  # type: ignore[arg-type]
    await submit(stack.env["AMQP_URL"], spec)
    view = await wait_for(stack.api, spec["job_id"])
    assert view["status"] == "rejected"
    rejected = next(
        e for e in await events(stack.api, spec["job_id"]) if e["type"] == "JobRejected"
    )
    assert field in {e["field"] for e in rejected["errors"]}
    assert not [e for e in await events(stack.api, spec["job_id"]) if e["type"] == "JobStarted"]


async def test_public_worker_refuses_a_hand_published_confidential_job(stack: Stack) -> None:
    job_id = str(uuid.uuid4())
    body = {
        "job_id": job_id,
        "job_type": "noop",
        "site": "public",
        "data_classification": "confidential",
    }
    connection = await aio_pika.connect(first_url(stack.env["AMQP_URL"]))
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("jobs.dispatch")
        await exchange.publish(
            aio_pika.Message(json.dumps(body).encode(), delivery_mode=2), routing_key="public"
        )
    view = await wait_for(stack.api, job_id)
    assert view["status"] == "dead_lettered"
    async with httpx.AsyncClient(base_url=stack.api) as http:
        letters = (await http.get("/dead-letters", params={"limit": 500})).json()["items"]
    [letter] = [d for d in letters if d["job_id"] == job_id]
    assert (letter["reason"], letter["source_queue"]) == ("residency", "jobs.public")
    assert not [e for e in await events(stack.api, job_id) if e["type"] == "JobStarted"]


async def test_burst_when_the_private_backlog_is_high_but_confidential_stays(
    stack: Stack,
) -> None:
    stack.stop("private_worker")
    backlog = [job("noop", target_cloud="private") for _ in range(110)]
    try:
        await submit(stack.env["AMQP_URL"], *backlog)
        async with httpx.AsyncClient(base_url=stack.api) as http:
            for _ in range(50):
                queues = (await http.get("/stats")).json()["queues"]
                if queues.get("jobs.private", {}).get("ready", 0) > 100:
                    break
                await asyncio.sleep(0.2)
        await asyncio.sleep(1.1)  # the router's reading is at most 1 s old
        burst, confidential = job("noop"), job("noop", data_classification="confidential")
        await submit(stack.env["AMQP_URL"], burst, confidential)
        view = await wait_for(stack.api, burst["job_id"])
        assert (view["status"], view["site"], view["rule"]) == ("succeeded", "public", "burst")
        assert view["reason"].startswith("private backlog 1")
        assert view["reason"].endswith("> 100: burst to public")
        held = await wait_for(stack.api, confidential["job_id"], {"queued"})
        assert (held["site"], held["rule"]) == ("private", "residency")
    finally:
        stack.start("private_worker")
    assert (await wait_for(stack.api, confidential["job_id"]))["site"] == "private"
    for spec in backlog[-3:]:
        assert (await wait_for(stack.api, spec["job_id"]))["status"] == "succeeded"


async def test_public_worker_can_run_jobs_on_a_remote_batch_api(
    stack: Stack, tmp_path: Path
) -> None:
    fake = FakeBatchApi(token="cloud-token", run_seconds=0.2)
    port = free_port()
    server = fake.serve(port)
    token_file = tmp_path / "executor-token"
    token_file.write_text("cloud-token\n")
    extra = {
        "EXECUTOR": "http",
        "EXECUTOR_URL": f"http://127.0.0.1:{port}",
        "EXECUTOR_TOKEN_FILE": str(token_file),
        "EXECUTOR_POLL_SECONDS": "0.05",
    }
    stack.stop("public_worker")
    stack.env.update(extra)
    stack.start("public_worker")
    try:
        await asyncio.sleep(1.5)
        (job_id,) = await submit(stack.env["AMQP_URL"], job("transcode", target_cloud="public"))
        view = await wait_for(stack.api, job_id)
        assert view["status"] == "succeeded"
        assert view["result"] == {"ran_remotely": True, "job_type": "transcode"}
    finally:
        stack.stop("public_worker")
        for key in extra:
            stack.env.pop(key)
        stack.start("public_worker")
        server.should_exit = True
        await asyncio.sleep(2)  # up and consuming before the module's stack is stopped
