"""Broker-wide faults, on a private RabbitMQ node this module starts and stops itself:
the node's app stopped and started under load, and its disk alarm (publishers blocked)."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest

from devtools.stack import Stack
from tests.faults.conftest import SIZE, running_stack
from tests.faults.ledger import check, rabbitmqctl_queues
from tests.faults.load import AmqpPublisher, Load, run_load
from tests.faults.servers import PrivateRabbitMQ

pytestmark = [pytest.mark.connected, pytest.mark.faults]
PROMPT = 10.0  # seconds within which POST /jobs must answer during a disk alarm


@pytest.fixture(scope="module")
def stack(
    private_rabbitmq: PrivateRabbitMQ,
    own_database: tuple[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("private-broker")
    with running_stack(private_rabbitmq.amqp_url, own_database[1], logs) as stack:
        yield stack


async def _run(
    stack: Stack,
    node: PrivateRabbitMQ,
    name: str,
    fault: Callable[[], Awaitable[None]],
    load: Load | None = None,
) -> None:
    load = load or Load()
    await run_load(load, node.amqp_url, lambda: stack.api, SIZE.jobs, SIZE.seconds, fault)
    await asyncio.to_thread(stack.wait_ready, 60)
    summary = await check(name, lambda: stack.api, load, rabbitmqctl_queues("/", node.node))
    assert not summary.problems(duplicates_allowed=True), summary.report()


async def test_stop_app_and_start_app(
    stack: Stack, private_rabbitmq: PrivateRabbitMQ, fault_round: int
) -> None:
    """Also with jobs parked in the delay tiers whose time comes while the node is down:
    they must still run once it is back."""
    load = Load()

    async def fault() -> None:
        await asyncio.sleep(SIZE.seconds / 3)
        await _park_delayed_jobs(stack, private_rabbitmq, load)
        await asyncio.to_thread(private_rabbitmq.ctl, "stop_app")
        await asyncio.sleep(2)  # the parked jobs come due while the node is down
        await asyncio.to_thread(private_rabbitmq.ctl, "start_app")

    await _run(stack, private_rabbitmq, "rabbitmq stop_app + start_app", fault, load)


async def _park_delayed_jobs(stack: Stack, node: PrivateRabbitMQ, load: Load) -> None:
    """A few confirmed jobs due in 1.5 s, waited for until the router has parked them."""
    publisher = AmqpPublisher(node.amqp_url)
    parked = []
    for i in range(4):
        job = load.new_job("amqp", random.Random(i))
        job.body = {"job_id": job.job_id, "job_type": "noop", "delay_seconds": 1.5}
        job.body["params"] = {"run": load.run}
        job.expected = "succeeded"
        await publisher.publish(json.dumps(job.body).encode())
        load.confirmed[job.job_id] = job
        parked.append(job.job_id)
    await publisher.close()
    async with httpx.AsyncClient(base_url=stack.api, timeout=10) as http:
        for job_id in parked:
            for _ in range(50):
                view = await http.get(f"/jobs/{job_id}")
                if view.status_code == 200 and view.json()["status"] == "scheduled":
                    break
                await asyncio.sleep(0.1)


def _alarm_on(node: PrivateRabbitMQ) -> bool:
    return "disk" in (node.ctl("eval", "'rabbit_alarm:get_alarms().'") or "")


async def test_disk_alarm(
    stack: Stack, private_rabbitmq: PrivateRabbitMQ, fault_round: int
) -> None:
    """Publishers are blocked: `POST /jobs` answers 503 promptly, raw publishes get no
    confirm, and once the alarm clears nothing that was confirmed is lost."""
    answers: list[tuple[int, float]] = []

    async def fault() -> None:
        await asyncio.sleep(SIZE.seconds / 3)
        await asyncio.to_thread(private_rabbitmq.ctl, "set_disk_free_limit", "100000GB")
        try:
            for _ in range(30):
                if await asyncio.to_thread(_alarm_on, private_rabbitmq):
                    break
                await asyncio.sleep(0.5)
            else:
                raise AssertionError("the disk alarm did not go on")
            async with httpx.AsyncClient(base_url=stack.api, timeout=PROMPT + 2) as http:
                started = time.monotonic()
                job = {"job_id": str(uuid.uuid4()), "job_type": "noop"}
                try:
                    status = (await http.post("/jobs", json=job)).status_code
                except httpx.HTTPError:
                    status = 0  # no answer at all
                answers.append((status, time.monotonic() - started))
        finally:
            await asyncio.to_thread(private_rabbitmq.ctl, "set_disk_free_limit", "50MB")

    await _run(stack, private_rabbitmq, "rabbitmq disk alarm", fault)
    assert all(status == 503 and took < PROMPT for status, took in answers), (
        f"POST /jobs during the disk alarm answered (status, seconds): {answers}"
    )
