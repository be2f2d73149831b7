"""Long attempts run under a lease, not an unacked delivery (docs/design.md, "Long
attempts"). The threshold is lowered (LEASE_AFTER_SECONDS=1, leases of 3 s renewed by
heartbeats every 0.5 s) so that a few seconds exercise what takes 30 minutes by default."""

from __future__ import annotations

import asyncio

import pytest

from devtools.stack import Stack
from services.status.service_layer.leases import INTERRUPTED
from tests.e2e.client import events, job, submit, wait_for

pytestmark = pytest.mark.connected


@pytest.fixture(scope="module")
def stack_env(stack_env: dict[str, str]) -> dict[str, str]:
    return {
        **stack_env,
        "LEASE_AFTER_SECONDS": "1",
        "LEASE_SECONDS": "3",
        "HEARTBEAT_SECONDS": "0.5",
    }


async def test_a_leased_attempt_runs_past_its_lease_once(stack: Stack) -> None:
    """Renewed by heartbeats, a 5 s attempt outlives its 3 s lease: one attempt, no retry."""
    [job_id] = await submit(
        stack.env["AMQP_URL"],
        job("sleep", params={"seconds": 5}, timeout_seconds=60, target_cloud="private"),
    )
    view = await wait_for(stack.api, job_id, timeout=40)
    assert (view["status"], view["attempts"]) == ("succeeded", 1), view
    history = [e["type"] for e in await events(stack.api, job_id)]
    assert history.count("JobStarted") == 1
    assert "JobFailed" not in history


async def test_a_leased_attempt_of_a_lost_worker_is_retried_once(stack: Stack) -> None:
    """kill -9 the worker mid-attempt: the broker has nothing to redeliver (the delivery
    was settled); the status service sees the lease lapse and retries the attempt."""
    [job_id] = await submit(
        stack.env["AMQP_URL"],
        job("sleep", params={"seconds": 4}, timeout_seconds=60, target_cloud="private"),
    )
    await wait_for(stack.api, job_id, {"running"}, timeout=20)
    await asyncio.sleep(1)
    stack.processes.pop("private_worker").kill()
    stack.start("private_worker")
    view = await wait_for(stack.api, job_id, timeout=60)
    assert (view["status"], view["attempts"]) == ("succeeded", 2), view
    failed = [e for e in await events(stack.api, job_id) if e["type"] == "JobFailed"]
    assert [(e["attempt"], e["error"]) for e in failed] == [(1, INTERRUPTED)]
