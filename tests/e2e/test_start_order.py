"""Services start in any order on a fresh vhost, and exit 0 on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest

from devtools.stack import Stack
from tests.e2e.client import wait_for

pytestmark = pytest.mark.connected


async def test_status_and_worker_first_router_last(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    stack = Stack(stack_env, tmp_path)
    stack.start("status", "private_worker")
    try:
        await asyncio.to_thread(stack.wait_ready)
        async with httpx.AsyncClient(base_url=stack.api) as http:
            response = await http.post("/jobs", json={"job_type": "noop"})
        job_id = response.json()["job_id"]
        await asyncio.sleep(1)  # the job waits in the intake queue the status service declared
        stack.start("router")
        view = await wait_for(stack.api, job_id)
        assert view["status"] == "succeeded"
    finally:
        codes = stack.stop()
    assert codes == {"status": 0, "private_worker": 0, "router": 0}


async def test_ctrl_c_then_sigterm_still_exits_0(stack_env: dict[str, str], tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches every process, and `make run` then sends SIGTERM too:
    repeated signals during and after the drain must not turn a clean exit into a kill."""
    stack = Stack(stack_env, tmp_path)
    stack.start()
    await asyncio.to_thread(stack.wait_ready)
    await asyncio.sleep(1)  # every service is past start-up and consuming
    processes = dict(stack.processes)
    for proc in processes.values():
        proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 30
    while any(p.poll() is None for p in processes.values()) and time.monotonic() < deadline:
        for proc in processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.02)
    codes = {name: proc.poll() for name, proc in processes.items()}
    stack.stop()
    assert codes == dict.fromkeys(processes, 0)
