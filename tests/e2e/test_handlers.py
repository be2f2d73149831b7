"""Issue 12 on the real broker: user handler modules, the process pool, child jobs,
result limits, heartbeats (HYBRIDQ_HANDLERS=tests.handler_modules.sample)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.stack import Stack
from tests.e2e.client import events, job, submit, wait_for

pytestmark = pytest.mark.connected

MODULE = "tests.handler_modules.sample"
EXAMPLE = "examples.thumbnails.handlers"  # the README's example, as `make run` loads it
RULES = str(Path(__file__).resolve().parent.parent / "handler_modules" / "rules.toml")


@pytest.fixture(scope="module")
def stack_env(stack_env: dict[str, str]) -> dict[str, str]:
    return {
        **stack_env,
        "HYBRIDQ_HANDLERS": f"{MODULE}, {EXAMPLE}",
        "ROUTING_RULES": RULES,
        "WORKER_CONCURRENCY": "3",
        "HEARTBEAT_SECONDS": "1",
    }


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def gone_within(pid: int, seconds: float) -> bool:
    """Whether process `pid` no longer exists (killed and reaped) within `seconds`."""
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


async def pid_of_busy(api: str, job_id: str, timeout: float = 30) -> int:
    """The pool process running a `busy` job (it reports its pid as progress)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in await events(api, job_id):
            if event["type"] == "JobProgress" and event["message"].startswith("pid "):
                return int(event["message"].split()[1])
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} never reported its pid")


async def test_a_module_from_hybridq_handlers_runs_plain_and_coroutine_handlers(
    stack: Stack,
) -> None:
    plain, coroutine = await submit(
        stack.env["AMQP_URL"],
        job("busy", params={"seconds": 0.2}, target_cloud="private"),
        job("fan_out", params={"n": 1}, target_cloud="public"),
    )
    assert (await wait_for(stack.api, plain))["status"] == "succeeded"
    assert (await wait_for(stack.api, coroutine))["status"] == "succeeded"


async def test_the_example_package_runs_a_batch_of_thumbnails(stack: Stack) -> None:
    [batch] = await submit(
        stack.env["AMQP_URL"], job("thumbnail_batch", params={"sizes": [16, 32]})
    )
    view = await wait_for(stack.api, batch)
    assert view["status"] == "succeeded", view
    for child, size in zip(view["result"]["children"], (16, 32), strict=True):
        child_view = await wait_for(stack.api, child)
        assert child_view["status"] == "succeeded", child_view
        assert (child_view["parent_id"], child_view["result"]["size"]) == (batch, size)


async def test_timed_out_plain_handler_is_killed_and_the_worker_stays_responsive(
    stack: Stack,
) -> None:
    [spinning] = await submit(
        stack.env["AMQP_URL"], job("busy", timeout_seconds=4, target_cloud="private")
    )
    pid = await pid_of_busy(stack.api, spinning)
    assert alive(pid)
    [quick] = await submit(stack.env["AMQP_URL"], job("noop", target_cloud="private"))
    done = await wait_for(stack.api, quick, timeout=20)
    assert done["status"] == "succeeded"
    failed = await wait_for(stack.api, spinning, {"retrying", "dead_lettered"}, timeout=30)
    assert failed["error"].startswith("timeout"), failed
    assert done["finished_at"] < failed["updated_at"]  # finished while the other spun
    assert await asyncio.to_thread(gone_within, pid, 5), (
        f"pool process {pid} still exists after the timeout"
    )
    await cancel(stack.api, spinning)  # stop its retries


async def cancel(api: str, job_id: str) -> None:
    async with httpx.AsyncClient(base_url=api, timeout=10) as http:
        response = await http.post(f"/jobs/{job_id}/cancel")
        assert response.status_code in (202, 409), response.text


async def test_cancelled_plain_handler_is_killed(stack: Stack) -> None:
    [spinning] = await submit(
        stack.env["AMQP_URL"], job("busy", timeout_seconds=120, target_cloud="public")
    )
    pid = await pid_of_busy(stack.api, spinning)
    [quick] = await submit(stack.env["AMQP_URL"], job("noop", target_cloud="public"))
    assert (await wait_for(stack.api, quick, timeout=20))["status"] == "succeeded"
    assert alive(pid)
    await cancel(stack.api, spinning)
    assert await asyncio.to_thread(gone_within, pid, 10), f"pool process {pid} still exists"
    assert (await wait_for(stack.api, spinning))["status"] == "cancelled"
    history = [e["type"] for e in await events(stack.api, spinning)]
    assert not {"JobSucceeded", "JobFailed"} & set(history), history


async def children_of(api: str, parent: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=api, timeout=10) as http:
        response = await http.get("/jobs", params={"parent_id": parent})
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items


@pytest.mark.parametrize("job_type", ["fan_out", "fan_out_plain"])
async def test_child_jobs_carry_parent_id_and_are_listed(stack: Stack, job_type: str) -> None:
    [parent] = await submit(stack.env["AMQP_URL"], job(job_type, params={"n": 3}))
    view = await wait_for(stack.api, parent)
    assert view["status"] == "succeeded", view
    ids = view["result"]["children"]
    assert len(set(ids)) == 3
    for child in ids:
        child_view = await wait_for(stack.api, child)
        assert (child_view["status"], child_view["parent_id"]) == ("succeeded", parent)
    listed = await children_of(stack.api, parent)
    assert sorted(c["job_id"] for c in listed) == sorted(ids)
    assert await children_of(stack.api, ids[0]) == []
    got = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "hybridq_cli", "get", parent],
        env={**os.environ, "HYBRIDQ_API": stack.api},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert got.returncode == 0, got.stderr
    assert "children (3)" in got.stdout, got.stdout
    assert all(c in got.stdout for c in ids), got.stdout


@pytest.mark.parametrize(
    ("size", "status"), [(64 * 1024, "succeeded"), (64 * 1024 + 1, "dead_lettered")]
)
async def test_results_are_json_objects_of_at_most_64_kib(
    stack: Stack, size: int, status: str
) -> None:
    [job_id] = await submit(stack.env["AMQP_URL"], job("sized_result", params={"bytes": size}))
    view = await wait_for(stack.api, job_id)
    assert view["status"] == status, view
    if status == "dead_lettered":
        assert view["attempts"] == 1  # permanent: not retried
        assert "over the limit of 65536 bytes" in view["error"], view["error"]


async def test_heartbeats_list_the_live_workers(stack: Stack) -> None:
    deadline = time.monotonic() + 20
    items: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=stack.api, timeout=10) as http:
        while time.monotonic() < deadline:
            items = (await http.get("/workers")).json()["items"]
            if {w["site"] for w in items} == {"public", "private"}:
                break
            await asyncio.sleep(0.3)
    assert {w["site"] for w in items} == {"public", "private"}, items
    for item in items:
        assert {"busy", "fan_out", "noop"} <= set(item["job_types"])
        assert item["concurrency"] == 3
        assert isinstance(item["running"], list)
    shown = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "hybridq_cli", "workers"],
        env={**os.environ, "HYBRIDQ_API": stack.api},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert {w["worker"] for w in items} <= set(shown.stdout.split()), shown.stdout


def test_a_handler_module_that_does_not_import_stops_the_worker(stack_env: dict[str, str]) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "services.private_worker"],
        env={**os.environ, **stack_env, "HYBRIDQ_HANDLERS": f"{MODULE},tests.handler_modules.nope"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert time.monotonic() - started < 30
    output = result.stdout + result.stderr
    assert "tests.handler_modules.nope" in output, output
    assert len([line for line in output.splitlines() if "nope" in line]) == 1, output
