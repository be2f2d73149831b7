"""Cancellation holds for processes started after it (contract section 5, issue 11), and a
running attempt is stopped: the real processes on a fresh vhost and database.

Each case asserts from the job's own events (no `JobStarted` / `JobRouted` / `JobSucceeded`)
rather than from the view, whose terminal status never changes once `cancelled`."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aio_pika
import httpx
import pytest

from devtools.stack import Stack
from tests.brokers import first_url
from tests.conftest import free_port
from tests.e2e.client import events, job, submit, wait_for

pytestmark = pytest.mark.connected


async def _ready(stack: Stack, queue: str) -> int:
    """Messages ready in `queue` now (a passive declare; the management API samples)."""
    connection = await aio_pika.connect(first_url(stack.env["AMQP_URL"]))
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        count = declared.declaration_result.message_count
        return int(count or 0)


async def _until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


FILLER = 5_000


async def _fill_stream(amqp_url: str, count: int) -> None:
    """Messages the feed skips (not from `jobs.events`) but must read through: the
    cancellation that follows lies behind a replay that takes a while, so a consumer that
    did not wait for `caught_up()` would take the job before the replay reaches it."""
    connection = await aio_pika.connect(first_url(amqp_url))
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        body = b'{"filler": "' + b"x" * 200 + b'"}'
        for start in range(0, count, 1000):
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        aio_pika.Message(body), routing_key="jobs.cancellations"
                    )
                    for _ in range(start, min(count, start + 1000))
                )
            )


async def _cancel(stack: Stack, job_id: str) -> None:
    async with httpx.AsyncClient(base_url=stack.api) as http:
        response = await http.post(f"/jobs/{job_id}/cancel", json={"reason": "not needed"})
    assert response.status_code == 202, response.text
    await wait_for(stack.api, job_id, {"cancelled"})


async def _types(stack: Stack, job_id: str) -> list[str]:
    return [e["type"] for e in await events(stack.api, job_id)]


def _stopped_cleanly(stack: Stack, log_dir: Path) -> None:
    codes = stack.stop()
    assert set(codes.values()) <= {0}, f"{codes}; see {log_dir}"


async def test_queued_job_cancelled_never_starts_on_a_worker_started_later(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    stack = Stack(stack_env, tmp_path)
    stack.start("status", "router")  # no worker yet: both jobs wait in jobs.private
    try:
        await asyncio.to_thread(stack.wait_ready)
        doomed, other = await submit(
            stack.env["AMQP_URL"],
            job("noop", target_cloud="private"),
            job("noop", target_cloud="private"),
        )
        for job_id in (doomed, other):
            await wait_for(stack.api, job_id, {"queued"})
        await _fill_stream(stack.env["AMQP_URL"], FILLER)
        await _cancel(stack, doomed)
        stack.start("private_worker")  # a fresh process, started after the cancel
        assert (await wait_for(stack.api, other))["status"] == "succeeded"

        assert await _ready(stack, "jobs.private") == 0  # the doomed job was delivered too
        await asyncio.sleep(1)  # an attempt it wrongly started would have reported by now
        types = await _types(stack, doomed)
        assert "JobStarted" not in types, types
        assert types[-1] == "JobCancelled", types
    finally:
        _stopped_cleanly(stack, tmp_path)


async def test_delayed_job_cancelled_is_not_dispatched_by_a_router_started_later(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    stack = Stack(stack_env, tmp_path)
    # no worker: whatever the router dispatches stays in jobs.private, and only the
    # router's own check can keep the cancelled job from being dispatched (JobRouted)
    stack.start("status", "router")
    try:
        await asyncio.to_thread(stack.wait_ready)
        doomed, other = await submit(
            stack.env["AMQP_URL"],
            job("noop", target_cloud="private", delay_seconds=3),
            job("noop", target_cloud="private", delay_seconds=3),
        )
        for job_id in (doomed, other):
            await wait_for(stack.api, job_id, {"scheduled"})
        assert stack.stop("router") == {"router": 0}
        await _cancel(stack, doomed)
        stack.start("router")  # a fresh router process, started after the cancel
        await wait_for(stack.api, other, {"queued"}, timeout=30)
        await asyncio.sleep(1.5)  # the doomed job fell due at the same time
        types = await _types(stack, doomed)
        assert "JobRouted" not in types, types
        assert types[-1] == "JobCancelled", types
        assert await _ready(stack, "jobs.private") == 1  # `other` only
    finally:
        _stopped_cleanly(stack, tmp_path)


SLEEP_SECONDS = 6.0


def _cancelled_attempts(metrics_port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    pattern = r'hybridq_worker_attempts_total\{[^}]*outcome="cancelled"[^}]*\} ([0-9.]+)'
    return sum(float(v) for v in re.findall(pattern, text))


async def test_running_attempt_is_stopped_by_cancel(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    metrics_port = free_port()
    stack = Stack(
        stack_env, tmp_path, per_service={"private_worker": {"METRICS_PORT": str(metrics_port)}}
    )
    stack.start()
    try:
        await asyncio.to_thread(stack.wait_ready)
        (running,) = await submit(
            stack.env["AMQP_URL"],
            job("sleep", target_cloud="private", params={"seconds": SLEEP_SECONDS}),
        )
        await wait_for(stack.api, running, {"running"})
        started = time.monotonic()
        await _cancel(stack, running)

        # the attempt ended (its task cancelled, counted as such), long before the
        # handler would have finished by itself
        async def attempt_cancelled() -> bool:
            return await asyncio.to_thread(_cancelled_attempts, metrics_port) == 1

        await _until(attempt_cancelled, 4, "attempt cancelled")
        assert time.monotonic() - started < SLEEP_SECONDS
        await asyncio.sleep(SLEEP_SECONDS + 2 - (time.monotonic() - started))
        types = await _types(stack, running)
        assert "JobSucceeded" not in types, types
        assert "JobFailed" not in types, types
        assert types[-1] == "JobCancelled", types
    finally:
        _stopped_cleanly(stack, tmp_path)
