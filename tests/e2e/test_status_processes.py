"""The status service as two processes: the HTTP API, and the write side in a child
(`services/status/entrypoints/write_side.py`). Each half may die; neither outlives the service."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from devtools.stack import Stack
from tests.e2e.client import job, submit, wait_for

pytestmark = pytest.mark.connected


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def write_side(stack: Stack) -> int:
    found = [c for c in children(stack.pid("status")) if "projector" in cmdline(c)]
    assert len(found) == 1, f"expected one write side under the status service, got {found}"
    return found[0]


def gone(pid: int) -> bool:
    """Exited (a zombie not yet reaped by whoever adopted it counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


async def until(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not {what} within {timeout}s")


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text (0 when absent)."""
    total = 0.0
    for line in metrics.splitlines():
        m = re.match(rf"{name}(?:{{(.*)}})? (\S+)$", line)
        if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
            total += float(m.group(2))
    return total


async def test_the_api_and_the_write_side_are_two_processes_with_one_metrics_page(
    stack: Stack, stack_env: dict[str, str]
) -> None:
    child = write_side(stack)
    assert child != stack.pid("status")
    [job_id] = await submit(stack_env["AMQP_URL"], job())
    await wait_for(stack.api, job_id, {"succeeded"})
    async with httpx.AsyncClient(base_url=stack.api, timeout=10) as http:
        answer = await http.get(f"/jobs/{job_id}")
        metrics = (await http.get("/metrics")).text
        ready = (await http.get("/readyz")).json()
    # the projection counted in the child, the request counted here: one page shows both
    assert sample(metrics, "hybridq_status_events_projected_total", type="JobSucceeded") >= 1
    assert sample(metrics, "hybridq_api_request_seconds_count", route="/jobs/{job_id}") >= 1
    assert ready == {"database": True, "broker": True}
    timing = answer.headers["server-timing"]
    parts = re.fullmatch(r"app;dur=(\d+\.\d), db;dur=(\d+\.\d)", timing)
    assert parts, timing
    # the read's own round trip to Postgres is counted, inside the request's time
    assert 0 < float(parts[2]) <= float(parts[1]), timing


async def test_a_killed_write_side_is_started_again_and_projects(
    stack: Stack, stack_env: dict[str, str]
) -> None:
    first = write_side(stack)
    os.kill(first, signal.SIGKILL)
    await until(lambda: gone(first), 10, "the killed write side gone")
    await until(
        lambda: [c for c in children(stack.pid("status")) if "projector" in cmdline(c)],
        15,
        "a new write side started",
    )
    assert write_side(stack) != first
    async with httpx.AsyncClient(base_url=stack.api, timeout=10) as http:
        metrics = (await http.get("/metrics")).text
    assert sample(metrics, "hybridq_status_write_side_restarts_total") == 1
    [job_id] = await submit(stack_env["AMQP_URL"], job())
    await wait_for(stack.api, job_id, {"succeeded"})


async def projecting(stack: Stack, amqp_url: str) -> int:
    """The write side's pid, once it has projected a job (started, not just spawned)."""
    [job_id] = await submit(amqp_url, job())
    await wait_for(stack.api, job_id, {"succeeded"})
    return write_side(stack)


async def test_the_write_side_drains_and_exits_with_the_service(
    stack: Stack, stack_env: dict[str, str]
) -> None:
    child = await projecting(stack, stack_env["AMQP_URL"])
    codes = stack.stop("status")
    assert codes == {"status": 0}
    assert gone(child)
    stack.start("status")
    stack.wait_ready()


async def test_the_write_side_does_not_outlive_a_killed_service(
    stack: Stack, stack_env: dict[str, str]
) -> None:
    child = await projecting(stack, stack_env["AMQP_URL"])
    stack.kill("status")
    await until(lambda: gone(child), 10, "the orphaned write side gone")
    stack.replace("status")
    stack.wait_ready()
    write_side(stack)
