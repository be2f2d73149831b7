"""Issue 6: graceful drain, quorum work queues, structured logs and metrics, for real."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.stack import Stack
from tests.conftest import free_port
from tests.e2e.client import events, job, submit, wait_for

pytestmark = pytest.mark.connected


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {"router": free_port(), "public_worker": free_port(), "private_worker": free_port()}


@pytest.fixture(scope="module")
def stack(
    stack_env: dict[str, str], ports: dict[str, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    per_service = {name: {"METRICS_PORT": str(port)} for name, port in ports.items()}
    per_service["private_worker"]["DRAIN_SECONDS"] = "2"
    stack = Stack(stack_env, tmp_path_factory.mktemp("ops-logs"), per_service=per_service)
    stack.start()
    try:
        stack.wait_ready()
        yield stack
    finally:
        assert set(stack.stop().values()) <= {0}


async def _stop_timed(stack: Stack, name: str) -> tuple[int | None, float]:
    started = time.monotonic()
    codes = await asyncio.to_thread(stack.stop, name)
    return codes[name], time.monotonic() - started


async def test_sigterm_finishes_a_short_attempt(stack: Stack) -> None:
    (job_id,) = await submit(stack.env["AMQP_URL"], job("sleep", params={"seconds": 1}))
    await wait_for(stack.api, job_id, {"running"})
    code, took = await _stop_timed(stack, "private_worker")
    stack.start("private_worker")
    assert code == 0
    assert took < 30
    view = await wait_for(stack.api, job_id)
    assert (view["status"], view["attempts"]) == ("succeeded", 1)
    started = [e for e in await events(stack.api, job_id) if e["type"] == "JobStarted"]
    assert len(started) == 1


async def test_sigterm_hands_a_long_attempt_back(stack: Stack) -> None:
    await asyncio.sleep(1.5)  # the restarted worker is consuming
    (job_id,) = await submit(stack.env["AMQP_URL"], job("sleep", params={"seconds": 6}))
    await wait_for(stack.api, job_id, {"running"})
    code, took = await _stop_timed(stack, "private_worker")
    assert code == 0
    assert took < 10  # DRAIN_SECONDS=2, then the attempt is handed back
    stack.start("private_worker")
    view = await wait_for(stack.api, job_id, timeout=40)
    assert view["status"] == "succeeded"
    history = await events(stack.api, job_id)
    assert [e["attempt"] for e in history if e["type"] == "JobStarted"] == [1, 1]
    assert "JobFailed" not in [e["type"] for e in history]


async def test_router_and_workers_serve_metrics(stack: Stack, ports: dict[str, int]) -> None:
    (job_id,) = await submit(stack.env["AMQP_URL"], job("noop", target_cloud="public"))
    await wait_for(stack.api, job_id)
    async with httpx.AsyncClient() as http:
        router = (await http.get(f"http://127.0.0.1:{ports['router']}/metrics")).text
        worker = (await http.get(f"http://127.0.0.1:{ports['public_worker']}/metrics")).text
    assert 'hybridq_router_messages_total{outcome="routed",rule="explicit"}' in router
    assert (
        'hybridq_worker_attempts_total{job_type="noop",outcome="succeeded",site="public"}' in worker
    )
    assert "hybridq_worker_attempt_seconds_bucket" in worker


async def test_logs_are_json_with_job_id_on_job_lines(stack: Stack) -> None:
    (job_id,) = await submit(stack.env["AMQP_URL"], job("noop"))
    await wait_for(stack.api, job_id)
    lines = []
    for name in ("router", "private_worker", "status"):
        for raw in (stack.log_dir / f"{name}.log").read_text().splitlines():
            if raw.strip():
                lines.append(json.loads(raw))  # every line is one JSON object
    about_job = [line for line in lines if job_id in json.dumps(line)]
    assert {line["service"] for line in about_job} == {"router", "private_worker"}
    assert all(line.get("job_id") == job_id for line in about_job)


async def test_quorum_work_queues(stack_env: dict[str, str], tmp_path: Path) -> None:
    from devtools import environment

    vhost = f"hybridq_test_quorum_{int(time.time() * 1000)}"
    url = environment.create_vhost(vhost)
    env = {
        **stack_env,
        "AMQP_URL": url,
        "WORK_QUEUE_TYPE": "quorum",
        "STATUS_HTTP_PORT": str(free_port()),
    }
    quorum = Stack(env, tmp_path / "logs")
    quorum.start()
    try:
        await asyncio.to_thread(quorum.wait_ready)
        ids = await submit(url, job("noop", target_cloud="public"), job("noop", priority=9))
        for job_id in ids:
            assert (await wait_for(quorum.api, job_id))["status"] == "succeeded"
        async with httpx.AsyncClient(auth=("guest", "guest")) as http:
            queue = (
                await http.get(f"http://127.0.0.1:15672/api/queues/{vhost}/jobs.public")
            ).json()
        assert queue["type"] == "quorum"
        assert queue["arguments"]["x-delivery-limit"] == 10
    finally:
        codes = quorum.stop()
        environment.delete_vhost(vhost)
    assert set(codes.values()) == {0}
