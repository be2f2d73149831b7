"""Issue 5: the status service and CLI on the real stack -- auth, readiness through a
database outage with no event lost, cancel, stats, metrics, the hybridq command."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from devtools.stack import Stack
from tests.brokers import BrokerUnderTest, broker_under_test, first_url
from tests.conftest import free_port
from tests.e2e.client import events, job, submit, wait_for
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.connected
READ, ADMIN = "read-token-123", "admin-token-456"


@pytest.fixture(scope="module")
def proxy() -> Iterator[TcpProxy]:
    proxy = TcpProxy(5432, free_port()).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def amqp_proxy(broker: BrokerUnderTest) -> Iterator[TcpProxy]:
    proxy = TcpProxy(broker.ports[0], free_port()).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def stack(
    stack_env: dict[str, str], amqp_proxy: TcpProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The real processes; the status service reaches the broker through a proxy."""
    parts = urlsplit(first_url(stack_env["AMQP_URL"]))
    via_proxy = urlunsplit(parts._replace(netloc=f"guest:guest@127.0.0.1:{amqp_proxy.listen_port}"))
    stack = Stack(
        stack_env,
        tmp_path_factory.mktemp("status-logs"),
        per_service={"status": {"AMQP_URL": via_proxy}},
    )
    stack.start()
    try:
        stack.wait_ready()
        yield stack
    finally:
        assert set(stack.stop().values()) <= {0}


@pytest.fixture(scope="module")
def stack_env(stack_env: dict[str, str], proxy: TcpProxy) -> dict[str, str]:
    parts = urlsplit(stack_env["DATABASE_URL"])
    via_proxy = parts._replace(netloc=f"postgres@127.0.0.1:{proxy.listen_port}")
    return {
        **stack_env,
        "DATABASE_URL": urlunsplit(via_proxy),
        "API_TOKEN": READ,
        "ADMIN_TOKEN": ADMIN,
    }


def http(stack: Stack, token: str | None = READ) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=stack.api, headers=headers, timeout=10)


async def test_auth_rules(stack: Stack) -> None:
    (job_id,) = await submit(stack.env["AMQP_URL"], job("noop"))
    async with (
        http(stack, None) as anonymous,
        http(stack, "wrong") as wrong,
        http(stack, READ) as reader,
        http(stack, ADMIN) as admin,
    ):
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await anonymous.get(path)).status_code == 200
        for client in (anonymous, wrong):
            response = await client.get(f"/jobs/{job_id}")
            assert response.status_code == 401
            assert response.json()["detail"]
            assert (await client.post("/jobs", json={"job_type": "noop"})).status_code == 401
        assert (await reader.post("/jobs", json={"job_type": "noop"})).status_code == 202
        assert (await admin.post("/jobs", json={"job_type": "noop"})).status_code == 202
        for path in ("/jobs", "/stats", "/dead-letters"):
            assert (await reader.get(path)).status_code == 200
        cancel = await reader.post(f"/jobs/{job_id}/cancel")
        assert cancel.status_code == 403
        redrive = await reader.post("/dead-letters/redrive", json={"ids": []})
        assert redrive.status_code == 403
        assert (await admin.post("/dead-letters/redrive", json={"ids": []})).status_code == 202
        unknown = await admin.post("/jobs/00000000-0000-4000-8000-000000000000/cancel")
        assert unknown.status_code == 404
        # schedules: submissions, so either token; nothing without one
        schedule = {"name": "auth", "every_seconds": 3600, "job": {"job_type": "noop"}}
        assert (await anonymous.post("/schedules", json=schedule)).status_code == 401
        assert (await wrong.get("/schedules")).status_code == 401
        created = (await reader.post("/schedules", json=schedule)).json()["schedule_id"]
        assert (await reader.get(f"/schedules/{created}")).status_code == 200
        assert (await anonymous.delete(f"/schedules/{created}")).status_code == 401
        paused = await reader.patch(f"/schedules/{created}", json={"enabled": False})
        assert paused.status_code == 200
        assert (await admin.delete(f"/schedules/{created}")).status_code == 204


def _get(stack: Stack, path: str) -> httpx.Response:
    return httpx.get(f"{stack.api}{path}", headers={"Authorization": f"Bearer {READ}"})


async def _until(predicate: object, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await asyncio.to_thread(predicate):  # type: ignore[arg-type]
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout}s")


def _dead_letter_depth(stack: Stack) -> int:
    vhost = stack.env["AMQP_URL"].rsplit("/", 1)[1]
    queue = httpx.get(
        f"{broker_under_test().management}/api/queues/{vhost}/jobs.dead-letter",
        auth=("guest", "guest"),
    ).json()
    return int(queue.get("messages", 0))


async def test_database_outage_readiness_and_no_event_lost(stack: Stack, proxy: TcpProxy) -> None:
    assert _get(stack, "/readyz").status_code == 200
    dead_before = _dead_letter_depth(stack)
    proxy.cut()
    try:
        await _until(lambda: _get(stack, "/readyz").status_code == 503, 5)
        assert _get(stack, "/readyz").json() == {"database": False, "broker": True}
        assert _get(stack, "/healthz").status_code == 200
        ids = await submit(stack.env["AMQP_URL"], *(job("noop") for _ in range(10)))
        await asyncio.sleep(3)  # jobs run; their events wait for the database
    finally:
        proxy.restore()
    await _until(lambda: _get(stack, "/readyz").status_code == 200, 5)
    for job_id in ids:
        view = await wait_for(stack.api, job_id, timeout=30, token=READ)
        assert view["status"] == "succeeded"
        assert [e["type"] for e in await events(stack.api, job_id, token=READ)] == [
            "JobSubmitted",
            "JobRouted",
            "JobStarted",
            "JobSucceeded",
        ]
    assert _dead_letter_depth(stack) == dead_before


async def test_broker_outage_readiness_and_no_event_lost(
    stack: Stack, amqp_proxy: TcpProxy
) -> None:
    amqp_proxy.cut()
    try:
        took = await _until(lambda: _get(stack, "/readyz").status_code == 503, 5)
        assert _get(stack, "/readyz").json() == {"database": True, "broker": False}
        assert _get(stack, "/healthz").status_code == 200
        # jobs run meanwhile (router and workers reach the broker); events queue up
        ids = await submit(stack.env["AMQP_URL"], *(job("noop") for _ in range(5)))
        await asyncio.sleep(2)
    finally:
        amqp_proxy.restore()
    took_back = await _until(lambda: _get(stack, "/readyz").status_code == 200, 5)
    for job_id in ids:
        assert (await wait_for(stack.api, job_id, token=READ))["status"] == "succeeded"
    assert took < 5
    assert took_back < 5


async def test_cancel_before_start_and_while_running(stack: Stack) -> None:
    delayed, running = await submit(
        stack.env["AMQP_URL"], job("noop", delay_seconds=2), job("sleep", params={"seconds": 20})
    )
    await wait_for(stack.api, delayed, {"scheduled"}, token=READ)
    await wait_for(stack.api, running, {"running"}, token=READ)
    async with http(stack, ADMIN) as admin:
        for job_id in (delayed, running):
            response = await admin.post(
                f"/jobs/{job_id}/cancel", json={"reason": "no longer needed"}
            )
            assert response.status_code == 202
        await asyncio.sleep(3)
        for job_id in (delayed, running):
            view = (await admin.get(f"/jobs/{job_id}")).json()
            assert (view["status"], view["error"]) == ("cancelled", "no longer needed")
            again = await admin.post(f"/jobs/{job_id}/cancel")
            assert again.status_code == 409
    delayed_types = [e["type"] for e in await events(stack.api, delayed, token=READ)]
    assert "JobStarted" not in delayed_types
    running_types = [e["type"] for e in await events(stack.api, running, token=READ)]
    assert "JobSucceeded" not in running_types


async def test_stats_and_metrics(stack: Stack) -> None:
    (job_id,) = await submit(stack.env["AMQP_URL"], job("noop", target_cloud="public"))
    await wait_for(stack.api, job_id, token=READ)
    await asyncio.sleep(1.1)
    async with http(stack) as reader:
        stats = (await reader.get("/stats")).json()
        metrics = (await reader.get("/metrics")).text
    assert stats["by_status"]["succeeded"] >= 1
    assert stats["by_site"]["public"]["succeeded"] >= 1
    assert set(stats["by_site"]) == {"public", "private"}
    assert stats["queues"]["jobs.public"]["consumers"] == 1
    assert set(stats["queues"]["jobs.private"]) == {"ready", "unacked", "consumers"}
    assert "hybridq_status_events_projected_total" in metrics
    assert "hybridq_status_projection_lag_seconds_bucket" in metrics


def cli(stack: Stack, *args: str, token: str = ADMIN) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HYBRIDQ_API": stack.api, "HYBRIDQ_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "hybridq_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_submit_watch_get_list_cancel_dlq(stack: Stack) -> None:
    submitted = cli(
        stack, "submit", "sleep", "--param", "seconds=0.5", "--priority", "8", "--watch"
    )
    assert submitted.returncode == 0, submitted.stderr
    lines = submitted.stdout.splitlines()
    job_id = lines[0]
    assert "JobStarted" in submitted.stdout
    assert "JobProgress" in submitted.stdout
    assert lines[-1] == f"job {job_id} succeeded"
    got = cli(stack, "get", job_id, "--json")
    assert got.returncode == 0
    assert (json.loads(got.stdout)["status"], json.loads(got.stdout)["priority"]) == (
        "succeeded",
        8,
    )
    listed = cli(stack, "list", "--status", "succeeded")
    assert listed.returncode == 0
    assert job_id in listed.stdout
    refused = cli(stack, "cancel", job_id)
    assert refused.returncode != 0
    assert refused.stderr.strip() == "hybridq: 409 job is already succeeded"
    assert cli(stack, "dlq", "list").returncode == 0
    separate = cli(stack, "submit", "noop")
    assert separate.returncode == 0
    watched = cli(stack, "watch", separate.stdout.strip())
    assert watched.returncode == 0
    assert watched.stdout.splitlines()[-1] == f"job {separate.stdout.strip()} succeeded"
    failing = cli(stack, "submit", "fail", "--watch")
    assert failing.returncode == 1
    unauthorized = cli(stack, "list", token="nope")
    assert unauthorized.returncode != 0
    assert "401" in unauthorized.stderr
    invalid = cli(stack, "submit", "noop", "--target", "moon")
    assert invalid.returncode != 0
    assert "target_cloud" in invalid.stderr
