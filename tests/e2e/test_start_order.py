"""Services start in any order on a fresh vhost, and exit 0 on SIGTERM."""

from __future__ import annotations

import asyncio
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
