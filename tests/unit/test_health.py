"""The router's and workers' probes answer from the event loop and follow their checks."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from shared.health import HealthServer
from tests.conftest import free_port


async def test_readiness_follows_the_checks_and_liveness_needs_a_running_loop() -> None:
    state = {"broker": True}

    async def broker() -> bool:
        return state["broker"]

    async def hangs() -> bool:
        await asyncio.sleep(60)
        return True

    port = free_port()
    server = HealthServer({"broker": broker}, "127.0.0.1", port)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/readyz")).status_code == 200
            state["broker"] = False
            answer = await http.get("/readyz")
            assert (answer.status_code, answer.text) == (503, "not ready: broker\n")
            server.checks["slow"] = hangs  # a check that never answers counts as failing
            state["broker"] = True
            assert (await http.get("/readyz")).status_code == 503
            assert (await http.get("/other")).status_code == 404

        def probe() -> int:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code

        asked = asyncio.get_running_loop().run_in_executor(None, probe)
        time.sleep(1.5)  # noqa: ASYNC251 -- the loop is blocked: liveness cannot answer
        with pytest.raises(httpx.TimeoutException):
            await asyncio.wait_for(asked, 5)
    finally:
        await server.stop()
