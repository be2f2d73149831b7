"""Issue 4: delays, retries with backoff, dead letters and redrive, poison, priorities,
duplicates -- on the real broker and database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import aio_pika
import httpx
import pytest

from devtools.stack import Stack
from tests.brokers import broker_under_test, first_url
from tests.e2e.client import events, job, publish_raw, submit, wait_for

pytestmark = pytest.mark.connected


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_delayed_jobs_start_within_their_window(stack: Stack) -> None:
    not_before = datetime.now(UTC) + timedelta(seconds=3)
    delayed, at_time = await submit(
        stack.env["AMQP_URL"],
        job("noop", delay_seconds=2),
        job("noop", not_before=not_before.isoformat()),
    )
    assert (await wait_for(stack.api, delayed, {"scheduled"}))["status"] == "scheduled"
    for job_id, earliest, delay in ((delayed, None, 2.0), (at_time, not_before, 3.0)):
        view = await wait_for(stack.api, job_id)
        assert view["status"] == "succeeded"
        history = await events(stack.api, job_id)
        scheduled = next(e for e in history if e["type"] == "JobScheduled")
        due = ts(scheduled["not_before"])
        if earliest is not None:
            assert due == earliest
        started = ts(view["started_at"])
        assert started >= due, "started before its time"
        assert (started - due).total_seconds() <= 1 + 0.1 * delay
        assert [e["type"] for e in history][:3] == ["JobSubmitted", "JobScheduled", "JobRouted"]


async def test_failing_twice_then_succeeding_takes_three_attempts_with_growing_gaps(
    stack: Stack,
) -> None:
    (job_id,) = await submit(stack.env["AMQP_URL"], job("flaky", params={"fail_times": 2}))
    view = await wait_for(stack.api, job_id)
    assert (view["status"], view["attempts"]) == ("succeeded", 3)
    history = await events(stack.api, job_id)
    failed = [e for e in history if e["type"] == "JobFailed"]
    assert [f["attempt"] for f in failed] == [1, 2]
    gaps = [(ts(f["retry_at"]) - ts(f["occurred_at"])).total_seconds() for f in failed]
    assert gaps[1] > gaps[0] > 0  # RETRY_BASE_SECONDS=0.2: ~0.2 s then ~0.4 s
    starts = [ts(e["occurred_at"]) for e in history if e["type"] == "JobStarted"]
    for fail_event, next_start in zip(failed, starts[1:], strict=True):
        assert next_start >= ts(fail_event["retry_at"]), "retried before retry_at"


async def test_always_failing_job_is_dead_lettered_and_can_be_redriven(stack: Stack) -> None:
    (job_id,) = await submit(
        stack.env["AMQP_URL"], job("fail", max_attempts=2, params={"error": "disk on fire"})
    )
    view = await wait_for(stack.api, job_id)
    assert (view["status"], view["attempts"]) == ("dead_lettered", 2)
    assert "disk on fire" in view["error"]
    async with httpx.AsyncClient(base_url=stack.api) as http:
        letters = (await http.get("/dead-letters", params={"limit": 500})).json()["items"]
        [letter] = [d for d in letters if d["job_id"] == job_id]
        assert (letter["reason"], letter["source_queue"]) == ("max_attempts", "jobs.private")
        answer = await http.post(
            "/dead-letters/redrive", json={"ids": [letter["id"]], "site": "public"}
        )
        assert answer.status_code == 202
        assert answer.json()["redriven"] == 1
    await wait_for(stack.api, job_id, {"queued", "running", "retrying"}, timeout=10)
    view = await wait_for(stack.api, job_id)
    assert (view["status"], view["attempts"], view["site"]) == ("dead_lettered", 4, "public")
    history = await events(stack.api, job_id)
    redriven = [e for e in history if e["type"] == "JobRedriven"]
    assert len(redriven) == 1
    assert redriven[0]["dead_letter_id"] == letter["id"]
    assert [e["attempt"] for e in history if e["type"] == "JobStarted"] == [1, 2, 3, 4]
    async with httpx.AsyncClient(base_url=stack.api) as http:
        still_open = (await http.get("/dead-letters", params={"limit": 500})).json()["items"]
    assert letter["id"] not in {d["id"] for d in still_open}


async def dispatch_raw(amqp_url: str, site: str, body: dict[str, object]) -> None:
    """Put a placed job straight on `jobs.dispatch` (as the router would), persistent."""
    connection = await aio_pika.connect(first_url(amqp_url))
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("jobs.dispatch")
        message = aio_pika.Message(
            json.dumps(body).encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        await exchange.publish(message, routing_key=site)


async def test_a_dead_lettered_job_has_one_job_dead_lettered(stack: Stack) -> None:
    """The worker's JobDeadLettered and the one recorded with its dead letter are one
    event (the id derived from the dead letter's), whichever the status service sees first:
    a max-attempts ending, a permanent error, and a worker's refusal."""
    url = stack.env["AMQP_URL"]
    failing, permanent = await submit(
        url, job("fail", max_attempts=1), job("sleep", params={"seconds": "soon"})
    )
    refused = job("noop", site="public", data_classification="confidential")
    await dispatch_raw(url, "public", refused)
    endings = {
        failing: "max_attempts",
        permanent: "permanent_error",
        refused["job_id"]: "residency",
    }
    for job_id in endings:
        assert (await wait_for(stack.api, str(job_id)))["status"] == "dead_lettered"
    async with httpx.AsyncClient(base_url=stack.api) as http:
        letters = (await http.get("/dead-letters", params={"limit": 500})).json()["items"]
    ids = {d["job_id"]: d["id"] for d in letters if d["job_id"] in endings}
    assert set(ids) == set(endings)
    # the workers' next reports are projected, so their JobDeadLettered are too (each
    # publishes in order, and the status service consumes one queue in order)
    after = await submit(url, job("noop", target_cloud="public"), job("noop"))
    for job_id in after:
        assert (await wait_for(stack.api, job_id))["status"] == "succeeded"
    for job_id, reason in endings.items():
        ended = [e for e in await events(stack.api, str(job_id)) if e["type"] == "JobDeadLettered"]
        assert len(ended) == 1, (reason, ended)
        derived = uuid.uuid5(uuid.NAMESPACE_URL, f"hybridq:dead-letter:{ids[job_id]}")
        assert ended[0]["event_id"] == str(derived), reason
        assert ended[0]["reason"].startswith(reason)


async def test_poison_messages_are_dead_lettered_while_valid_jobs_run(stack: Stack) -> None:
    poison = {
        "malformed_json": b'{"job_id": ',
        "schema": json.dumps(job("noop", priority="high")).encode(),
        "oversize": json.dumps(job("noop", params={"blob": "x" * 300_000})).encode(),
        "unknown_schema_version": json.dumps(job("noop", schema_version=99)).encode(),
    }
    await publish_raw(stack.env["AMQP_URL"], list(poison.values()))
    (good,) = await submit(stack.env["AMQP_URL"], job("noop"))
    assert (await wait_for(stack.api, good))["status"] == "succeeded"
    await asyncio.sleep(0.5)
    async with httpx.AsyncClient(base_url=stack.api) as http:
        letters = (await http.get("/dead-letters", params={"limit": 500})).json()["items"]
    bodies = {d["reason"]: d for d in letters if d["source_queue"] == "jobs.router.intake"}
    assert set(poison) <= set(bodies)
    for reason in ("schema", "oversize", "unknown_schema_version"):
        job_id = json.loads(poison[reason])["job_id"]
        assert (await wait_for(stack.api, job_id))["status"] == "rejected"
    # the broker's own dead-letter queue holds them too, with the reason in headers
    async with httpx.AsyncClient(auth=("guest", "guest")) as http:
        vhost = stack.env["AMQP_URL"].rsplit("/", 1)[1]
        got = await http.post(
            f"{broker_under_test().management}/api/queues/{vhost}/jobs.dead-letter/get",
            json={"count": 100, "ackmode": "ack_requeue_true", "encoding": "auto"},
        )
    reasons = {m["properties"]["headers"]["x-hybridq-reason"] for m in got.json()}
    assert set(poison) <= reasons


@pytest.mark.skipif(
    broker_under_test().clustered,
    reason="quorum queues have no priorities on RabbitMQ 3.10-3.13 (docs/cluster.md)",
)
async def test_priority_nine_overtakes_a_backlog_of_priority_one(stack: Stack) -> None:
    stack.stop("private_worker")
    try:
        low = await submit(
            stack.env["AMQP_URL"],
            *(job("noop", priority=1, target_cloud="private") for _ in range(30)),
        )
        high = await submit(
            stack.env["AMQP_URL"],
            *(job("noop", priority=9, target_cloud="private") for _ in range(3)),
        )
        for job_id in low + high:
            await wait_for(stack.api, job_id, {"queued"})
    finally:
        stack.env["WORKER_CONCURRENCY"] = "1"
        stack.start("private_worker")
        del stack.env["WORKER_CONCURRENCY"]
    views = [await wait_for(stack.api, j) for j in low + high]
    started = {v["job_id"]: ts(v["started_at"]) for v in views}
    assert max(started[j] for j in high) < min(started[j] for j in low)


async def test_duplicate_job_id_runs_once_even_across_a_router_restart(stack: Stack) -> None:
    spec = job("noop")
    await submit(stack.env["AMQP_URL"], spec, spec)
    await wait_for(stack.api, spec["job_id"])
    assert stack.stop("router") == {"router": 0}
    stack.start("router")
    await submit(stack.env["AMQP_URL"], spec)
    (marker,) = await submit(stack.env["AMQP_URL"], job("noop"))
    await wait_for(stack.api, marker)  # the router has processed the duplicate by now
    history = await events(stack.api, spec["job_id"])
    assert [e["type"] for e in history].count("JobStarted") == 1


async def test_a_message_requeued_over_and_over_hits_the_delivery_limit(stack: Stack) -> None:
    """A consumer that keeps failing a message (here: always nacking with requeue, as a
    crashing router would) does not loop it: the queue's explicit x-delivery-limit
    dead-letters it."""
    stack.stop("router")
    poison = job("noop")
    try:
        await submit(stack.env["AMQP_URL"], poison)
        connection = await aio_pika.connect(first_url(stack.env["AMQP_URL"]))
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue("jobs.router.intake", ensure=False)
            deliveries = 0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5), queue.iterator() as messages:
                    async for message in messages:  # gone after the limit: times out
                        deliveries += 1
                        await message.nack(requeue=True)
            # dead-lettered after the limit (5 on the queue; 3.10 counts every return)
            assert 2 <= deliveries <= 6
    finally:
        stack.start("router")
    async with httpx.AsyncClient(base_url=stack.api) as http:
        for _ in range(50):
            letters = (await http.get("/dead-letters", params={"limit": 500})).json()["items"]
            mine = [d for d in letters if d["job_id"] == poison["job_id"]]
            if mine:
                break
            await asyncio.sleep(0.2)
    assert mine, "not dead-lettered"
    assert (mine[0]["reason"], mine[0]["source_queue"]) == ("delivery_limit", "jobs.router.intake")


async def test_a_redelivered_attempt_counts_as_lost_and_is_retried(stack: Stack) -> None:
    """A job redelivered to a worker means the worker holding it died mid-attempt: the
    attempt counts as failed and the normal retry path takes over (no endless loop)."""
    stack.stop("private_worker")
    try:
        (job_id,) = await submit(stack.env["AMQP_URL"], job("noop", target_cloud="private"))
        await wait_for(stack.api, job_id, {"queued"})
        connection = await aio_pika.connect(first_url(stack.env["AMQP_URL"]))
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue("jobs.private", ensure=False)
            message = await queue.get(timeout=5)
            await message.nack(requeue=True)  # as a crashed worker's channel would
    finally:
        stack.start("private_worker")
    view = await wait_for(stack.api, job_id)
    assert (view["status"], view["attempts"]) == ("succeeded", 2)
    failed = [e for e in await events(stack.api, job_id) if e["type"] == "JobFailed"]
    assert [f["attempt"] for f in failed] == [1]
    assert failed[0]["error"].startswith("attempt interrupted")
