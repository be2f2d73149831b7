"""User handlers on FastStream's in-memory broker (with the real process pool): the
JobContext of both kinds, child jobs, result limits, leases and heartbeats."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import pytest
from faststream.rabbit import TestRabbitBroker

from shared.contracts.jobs import Site
from shared.worker.handlers import child_job_id
from shared.worker.loading import load_handlers
from tests.unit.capture import capture
from tests.unit.test_worker_inmemory import close_pools, dispatch, placed, worker

__all__ = ["close_pools"]  # the autouse fixture that closes each test's pool

SAMPLE = "tests.handler_modules.sample"


def registry() -> Any:
    return load_handlers([SAMPLE])


@pytest.mark.parametrize("job_type", ["fan_out", "fan_out_plain"])
async def test_children_get_parent_id_and_deterministic_ids(job_type: str) -> None:
    w = worker(Site.PRIVATE, registry())
    seen = capture(w.broker)
    job_id = uuid.uuid4()
    body = placed(
        "private",
        job_type,
        job_id=str(job_id),
        params={"n": 2},
        attempt=2,
        data_classification="confidential",
    )
    async with TestRabbitBroker(w.broker):
        await dispatch(w, "private", body)
    expected = [str(child_job_id(job_id, 2, i)) for i in range(2)]
    assert seen.events[-1]["type"] == "JobSucceeded", seen.events
    assert seen.events[-1]["result"] == {"children": expected}
    assert [s["job_id"] for s in seen.submitted] == expected
    assert {(s["parent_id"], s["data_classification"]) for s in seen.submitted} == {
        (str(job_id), "confidential")
    }
    progress = [e for e in seen.events if e["type"] == "JobProgress"]
    assert [(p["percent"], p["message"]) for p in progress] == [(100, "submitted")]


def test_child_ids_differ_by_attempt_and_index() -> None:
    parent = uuid.uuid4()
    ids = {child_job_id(parent, attempt, index) for attempt in (1, 2) for index in (0, 1)}
    assert len(ids) == 4
    assert child_job_id(parent, 1, 0) == child_job_id(parent, 1, 0)


@pytest.mark.parametrize(
    ("size", "outcome"), [(64 * 1024, "JobSucceeded"), (64 * 1024 + 1, "JobDeadLettered")]
)
async def test_result_over_64_kib_fails_permanently(size: int, outcome: str) -> None:
    w = worker(Site.PUBLIC, registry())
    seen = capture(w.broker)
    async with TestRabbitBroker(w.broker):
        await dispatch(w, "public", placed("public", "sized_result", params={"bytes": size}))
    assert seen.types()[-1] == outcome
    if outcome == "JobDeadLettered":
        assert seen.events[-1]["reason"].startswith("permanent_error: ")
        [failed] = [e for e in seen.events if e["type"] == "JobFailed"]
        assert "65537 bytes" in failed["error"], failed


async def test_timeout_kills_the_pool_process_and_the_pool_replaces_it() -> None:
    w = worker(Site.PRIVATE, registry(), WORKER_CONCURRENCY=1)
    seen = capture(w.broker)
    async with TestRabbitBroker(w.broker):
        await dispatch(w, "private", placed("private", "busy", timeout_seconds=1.5))
        [pid] = [
            int(e["message"].split()[1])
            for e in seen.events
            if e["type"] == "JobProgress" and e["message"].startswith("pid ")
        ]
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert seen.types()[-1] == "JobFailed"
        assert seen.events[-1]["error"] == "timeout: the attempt ran longer than 1.5s"
        # the one pool process was replaced: the next plain job runs
        await dispatch(w, "private", placed("private", "busy", params={"seconds": 0}))
    assert seen.types()[-1] == "JobSucceeded"


async def test_a_long_attempt_is_leased_and_released_and_heartbeats_list_it() -> None:
    w = worker(Site.PRIVATE, registry(), LEASE_AFTER_SECONDS=1)
    seen = capture(w.broker)
    async with TestRabbitBroker(w.broker):
        job = placed("private", "sleep", params={"seconds": 0.6}, timeout_seconds=5)
        running = asyncio.create_task(dispatch(w, "private", job))
        await asyncio.sleep(0.3)
        beat = w.heartbeat.message()
        await running
        short = placed("private", "sleep", params={"seconds": 0}, timeout_seconds=0.5)
        await dispatch(w, "private", short)
    assert [r.job_type for r in beat.running] == ["sleep"]
    assert {"busy", "fan_out", "noop", "transcode"} <= set(beat.job_types)
    kinds = [m["type"] for m in seen.worker_messages]
    assert kinds == ["AttemptLeased", "AttemptReleased"]  # the short attempt holds its delivery
    assert seen.worker_messages[0]["job"]["job_id"] == seen.worker_messages[1]["job_id"]


async def test_leased_attempts_count_against_concurrency() -> None:
    """A leased attempt frees its delivery, not its slot: with every slot busy a new job
    is parked (same attempt) instead of running beyond WORKER_CONCURRENCY."""
    w = worker(Site.PRIVATE, registry(), LEASE_AFTER_SECONDS=1, WORKER_CONCURRENCY=1)
    w.runner.slot_wait_seconds = 0.2
    seen = capture(w.broker)
    async with TestRabbitBroker(w.broker):
        long = placed("private", "sleep", params={"seconds": 1}, timeout_seconds=5)
        running = asyncio.create_task(dispatch(w, "private", long))
        await asyncio.sleep(0.3)
        await dispatch(w, "private", placed("private", "noop"))
        await running
    [(_, parked)] = seen.delayed
    assert (parked["job_type"], parked["attempt"]) == ("noop", 1)
    assert seen.types().count("JobStarted") == 1


async def test_a_pool_process_killed_while_idle_is_replaced_before_use() -> None:
    w = worker(Site.PRIVATE, registry(), WORKER_CONCURRENCY=1)
    seen = capture(w.broker)
    async with TestRabbitBroker(w.broker):
        await dispatch(w, "private", placed("private", "busy", params={"seconds": 0}))
        [pid] = w.pool.pids()
        os.kill(pid, 9)
        await asyncio.sleep(0.2)
        await dispatch(w, "private", placed("private", "busy", params={"seconds": 0}))
    assert seen.types().count("JobSucceeded") == 2, seen.events
    assert w.pool.pids() != [pid]
