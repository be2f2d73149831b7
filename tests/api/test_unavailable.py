"""A broker that cannot take a publish promptly gives 503 within seconds, never a hang
or a 500: the status service's broker connection is stalled (as a broker blocked by a
resource alarm: nothing confirmed) or cut, through the test's proxy."""

from __future__ import annotations

import asyncio
import time

import pytest

from devtools.stack import Stack
from tests.api.conftest import ADMIN, StallingProxy, client
from tests.api.test_streams import known_job

pytestmark = pytest.mark.connected


async def recovered(status: Stack) -> None:
    async with client(status, ADMIN, timeout=30) as http:
        for _ in range(100):  # back once the service has reconnected
            if (await http.post("/jobs", json={"job_type": "noop"})).status_code == 202:
                return
            await asyncio.sleep(0.2)
    raise AssertionError("POST /jobs did not recover after the broker came back")


async def test_submit_answers_503_promptly_while_the_broker_is_stalled(
    status: Stack, amqp_proxy: StallingProxy
) -> None:
    await recovered(status)
    amqp_proxy.stalled = True
    try:
        async with client(status, ADMIN, timeout=30) as http:
            started = time.monotonic()
            submit = await http.post("/jobs", json={"job_type": "noop"})
            assert submit.status_code == 503, submit.text
            assert "did not confirm" in submit.json()["detail"]
            assert time.monotonic() - started < 8  # PUBLISH_TIMEOUT_SECONDS=2
    finally:
        amqp_proxy.stalled = False
    await recovered(status)


async def test_submit_and_cancel_answer_503_while_the_broker_is_cut(
    status: Stack, amqp_url: str, amqp_proxy: StallingProxy
) -> None:
    job_id = await known_job(status, amqp_url)
    amqp_proxy.cut()
    try:
        async with client(status, ADMIN, timeout=30) as http:
            for _ in range(3):
                started = time.monotonic()
                submit = await http.post("/jobs", json={"job_type": "noop"})
                assert submit.status_code == 503, submit.text
                assert "broker" in submit.json()["detail"]
                assert time.monotonic() - started < 8  # PUBLISH_TIMEOUT_SECONDS=2
            cancel = await http.post(f"/jobs/{job_id}/cancel")
            assert cancel.status_code == 503, cancel.text
            assert (await http.get(f"/jobs/{job_id}")).json()["status"] == "submitted"
    finally:
        amqp_proxy.restore()
    await recovered(status)
