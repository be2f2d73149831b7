"""Issue 11's scenario: two of every service, one of each killed with `kill -9` under load
and replaced by a fresh one with an empty local disk (as on another machine).

Ledger: nothing lost; the same job_ids published again run nothing; every live router
replica consumed jobs (competing consumers, none idle by design); and jobs cancelled
while queued or scheduled end `cancelled` with no `JobStarted`, although every router
and worker alive when they would have run started after the cancel (contract §1, §5).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator

import httpx
import pytest

from devtools.stack import SERVICES, Stack
from tests.faults.conftest import SIZE, running_stack
from tests.faults.ledger import all_views, check, rabbitmqctl_queues, run_again, started_counts
from tests.faults.load import AmqpPublisher, Load, Submitted, run_load

pytestmark = [pytest.mark.connected, pytest.mark.faults]
CANCELLED_EACH = 4  # queued jobs and scheduled jobs cancelled before the faults
DELAY = 12  # seconds: the scheduled ones come due after every restart below


@pytest.fixture(scope="module")
def stack(
    vhost: tuple[str, str],
    own_database: tuple[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("replicas")
    with running_stack(vhost[1], own_database[1], logs, replicas=2, ready_seconds=90) as stack:
        yield stack


async def _wait_status(api: str, job_id: str, wanted: str, timeout: float = 30) -> None:
    async with httpx.AsyncClient(base_url=api, timeout=10) as http:
        for _ in range(int(timeout * 5)):
            response = await http.get(f"/jobs/{job_id}")
            if response.status_code == 200 and response.json()["status"] == wanted:
                return
            await asyncio.sleep(0.2)
    raise AssertionError(f"{job_id} never {wanted}")


async def _cancelled_before_start(stack: Stack, amqp_url: str, load: Load) -> list[str]:
    """Queued (no public worker running) and scheduled jobs, each cancelled at once."""
    stack.stop("public_worker#1", "public_worker#2")
    publisher = AmqpPublisher(amqp_url)
    jobs: list[tuple[Submitted, str]] = []
    for i in range(2 * CANCELLED_EACH):
        queued = i < CANCELLED_EACH
        body = {"job_type": "noop", "params": {"run": load.run}, "max_attempts": 10}
        body |= {"target_cloud": "public"} if queued else {"delay_seconds": DELAY}
        job = load.new_job("amqp", random.Random(i))
        job.body = {"job_id": job.job_id, **body}
        job.expected = "cancelled"
        await publisher.publish(json.dumps(job.body).encode())
        load.confirmed[job.job_id] = job
        jobs.append((job, "queued" if queued else "scheduled"))
    await publisher.close()
    api = stack.apis[-1]
    async with httpx.AsyncClient(base_url=api, timeout=10) as http:
        for job, status in jobs:
            await _wait_status(api, job.job_id, status)
            assert (await http.post(f"/jobs/{job.job_id}/cancel")).status_code == 202
    for job, _ in jobs:
        await _wait_status(api, job.job_id, "cancelled")
    stack.start("public_worker", replicas=2)  # started after the cancel
    return [job.job_id for job, _ in jobs]


def _consumed(stack: Stack, name: str) -> int:
    """Intake messages (jobs.intake) the current process of router replica `name` handled:
    its log lines about a job, but for the delay machinery's (`hybridq.router.due`)."""
    count = 0
    for line in stack.log_path(name).read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        count += "job_id" in entry and not str(entry.get("logger", "")).endswith(".due")
    return count


async def test_two_of_every_service_one_of_each_killed_and_replaced(
    stack: Stack, vhost: tuple[str, str], fault_round: int
) -> None:
    load = Load()
    cancelled = await _cancelled_before_start(stack, vhost[1], load)

    async def fault() -> None:
        for service in SERVICES:  # one of each, kill -9, a fresh one with an empty disk
            await asyncio.sleep(SIZE.seconds / 6)
            stack.kill(f"{service}#1")
            await asyncio.sleep(0.5)
            stack.replace(f"{service}#1")
        # and restart the survivors, so that no router or worker alive when the
        # cancelled jobs would run had heard the cancel itself
        for service in ("router", "private_worker"):
            await asyncio.to_thread(stack.restart, f"{service}#2")

    await run_load(
        load, vhost[1], lambda: stack.apis[-1], SIZE.jobs, SIZE.seconds, fault, fault_round
    )
    await asyncio.to_thread(stack.wait_ready, 90)
    queues = rabbitmqctl_queues(vhost[0])
    summary = await check("2 of each, 1 of each kill -9", lambda: stack.apis[-1], load, queues)
    problems = summary.problems(duplicates_allowed=True)  # redelivery after a kill: allowed

    started = await started_counts(stack.apis[-1], cancelled)
    ran_cancelled = {j: n for j, n in started.items() if n}

    views = []
    for api in stack.apis:
        async with httpx.AsyncClient(base_url=api, timeout=10) as http:
            views.append({j: v["status"] for j, v in (await all_views(http, load.run)).items()})
    same_views = all(v == views[0] for v in views)

    again = await run_again(vhost[1], stack.apis[-1], load)
    consumed = {n: _consumed(stack, n) for n in ("router#1", "router#2")}
    print(f"router replicas' job log lines: {consumed}; ran again: {len(again)}")

    failures = [summary.report()] if problems else []
    if ran_cancelled:
        failures.append(f"cancelled before start, yet started (JobStarted count): {ran_cancelled}")
    if not same_views:
        failures.append("the two status replicas disagree about the jobs' status")
    if again:
        failures.append(f"re-published job_ids ran again ({len(again)}): {again[:3]}")
    if not all(consumed.values()):
        failures.append(f"a live router replica consumed nothing: {consumed}")
    assert not failures, "\n".join(failures)
