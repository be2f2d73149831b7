"""Webhook deliveries on the real database with a real receiver on loopback: two delivery
workers (as two status replicas) send each event once; through 500s, an outage and a
worker lost with claims in flight every event still arrives, signed, in each job's order;
redirects are not followed; an address refused at delivery gets nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, defaultdict
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.status.adapters.postgres import unit_of_work
from services.status.adapters.tables import webhook_deliveries
from services.status.adapters.webhook_client import HttpSender
from services.status.domain.arrivals import Arrival
from services.status.domain.webhooks import Webhook
from services.status.entrypoints.webhook_delivery import DeliveryWorker
from services.status.service_layer import projecting
from services.status.service_layer import webhooks as use_cases
from services.status.service_layer.unit_of_work import Delivery, UnitOfWorkFactory
from services.status.service_layer.webhooks import RetryPolicy
from tests.unit.test_webhooks import T0, lifecycle
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.connected
FAST = RetryPolicy(base_seconds=0.1, max_seconds=1.0, give_up_after=timedelta(hours=24))
SECRET = "integration-secret-0123456789"


@pytest.fixture
async def clean(engine: AsyncEngine) -> AsyncEngine:
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE webhooks, webhook_deliveries, webhook_attempts"))
    return engine


async def register(units: UnitOfWorkFactory, url: str, events: tuple[str, ...]) -> Webhook:
    hook = use_cases.new(url, events, None, SECRET, T0)
    async with units() as uow:
        await use_cases.register(uow, hook)
    return hook


async def project_jobs(units: UnitOfWorkFactory, n: int, per_batch: int = 20) -> list[uuid.UUID]:
    jobs = [uuid.uuid4() for _ in range(n)]
    for i in range(0, n, per_batch):
        events = [e for j in jobs[i : i + per_batch] for e in lifecycle(j, ok=(hash(j) % 5 != 0))]
        async with units() as uow:
            await projecting.project(uow, [Arrival(e) for e in events])
    return jobs


def replica(
    database_url: str, allowed: list[str], lease_seconds: float = 3.0
) -> tuple[DeliveryWorker, AsyncEngine, HttpSender]:
    """A delivery worker as another status replica runs it: its own pool and HTTP client."""
    engine = create_async_engine(database_url)
    sender = HttpSender(allowed)
    worker = DeliveryWorker(
        unit_of_work(engine),
        sender,
        policy=FAST,
        concurrency=8,
        lease_seconds=lease_seconds,
        poll_seconds=0.1,
    )
    return worker, engine, sender


async def wait_until(check: object, seconds: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def states(engine: AsyncEngine) -> Counter[str]:
    async with engine.connect() as conn:
        return Counter(await conn.scalars(select(webhook_deliveries.c.state)))


async def test_two_replicas_send_each_event_once(clean: AsyncEngine, database_url: str) -> None:
    receiver = await Receiver().start()
    units = unit_of_work(clean)
    hook = await register(units, receiver.url(), ("JobStarted", "JobSucceeded", "JobCancelled"))
    replicas = [replica(database_url, ["127.0.0.1"]) for _ in range(2)]
    tasks = [asyncio.create_task(w.run()) for w, _, _ in replicas]
    try:
        await project_jobs(units, 100)
        await wait_until(lambda: len(receiver.calls) >= 200, 60)
        await asyncio.sleep(1.0)  # anything sent twice would arrive by now
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, engine, sender in replicas:
            await sender.close()
            await engine.dispose()
        await receiver.stop()
    ids = Counter(c.headers["x-hybridq-event-id"] for c in receiver.calls)
    assert len(ids) == 200
    assert [i for i, n in ids.items() if n > 1] == []
    assert all(c.signed_by(hook.secret) for c in receiver.calls)
    assert await states(clean) == {"delivered": 200}


@pytest.mark.timeout(240)
async def test_every_event_arrives_signed_in_order_through_500s_an_outage_and_a_lost_replica(
    clean: AsyncEngine, database_url: str
) -> None:
    receiver = await Receiver(fail_every=3).start()
    units = unit_of_work(clean)
    ordered = ("JobRouted", "JobStarted", "JobSucceeded", "JobCancelled")
    hook = await register(units, receiver.url(), ordered)
    first, second = replica(database_url, ["127.0.0.1"]), replica(database_url, ["127.0.0.1"])
    tasks = [asyncio.create_task(first[0].run()), asyncio.create_task(second[0].run())]
    try:
        jobs = await project_jobs(units, 100)
        await wait_until(lambda: len(receiver.calls) >= 30, 30)
        await receiver.stop()  # down, with claims in flight
        tasks[0].cancel()  # a replica lost: its claims are never settled, their lease ends
        jobs += await project_jobs(units, 100)
        await asyncio.sleep(8)
        await receiver.start()
        expected = 3 * len(jobs)
        await wait_until(
            lambda: len({c.event["event_id"] for c in receiver.delivered()}) >= expected, 150
        )
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, engine, sender in (first, second):
            await sender.close()
            await engine.dispose()
        await receiver.stop()
    assert all(c.signed_by(hook.secret) for c in receiver.calls)
    assert all(c.headers["x-hybridq-event-id"] == c.event["event_id"] for c in receiver.calls)
    by_job: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for c in receiver.calls:
        by_job[c.event["job_id"]].append((c.event["type"], c.answered))
    rank = {t: i for i, t in enumerate(ordered[:3])} | {"JobCancelled": 2}
    for job, seen in by_job.items():
        # an event is sent only after every earlier one of its job was answered 2xx
        acked = -1
        for kind, answered in seen:
            assert rank[kind] <= acked + 1, f"job {job}: {kind} before its predecessor: {seen}"
            if 200 <= answered < 300:
                acked = max(acked, rank[kind])
    assert {str(j) for j in jobs} == set(by_job)
    assert (await states(clean))["delivered"] == 3 * len(jobs)
    async with units() as uow:
        log = await uow.webhooks.attempts(hook.webhook_id, None, 5000)
    assert {a.status_code for a in log if a.outcome == "retrying"} >= {500, None}
    assert any(a.error for a in log)


async def test_redirects_are_not_followed(clean: AsyncEngine, database_url: str) -> None:
    target = await Receiver().start()
    redirecting = await Receiver(answer=lambda path: (302, {"Location": target.url("/x")})).start()
    units = unit_of_work(clean)
    hook = await register(units, redirecting.url(), ("JobSucceeded", "JobCancelled"))
    worker, engine, sender = replica(database_url, ["127.0.0.1"])
    task = asyncio.create_task(worker.run())
    try:
        await project_jobs(units, 1)
        await wait_until(lambda: len(redirecting.calls) >= 2, 20)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sender.close()
        await engine.dispose()
        await redirecting.stop()
        await target.stop()
    assert target.calls == []
    async with units() as uow:
        log = await uow.webhooks.attempts(hook.webhook_id, None, 10)
    assert log[-1].status_code == 302
    assert log[-1].outcome == "retrying"


async def test_a_loopback_url_not_allowed_gets_nothing_at_delivery(
    clean: AsyncEngine, database_url: str
) -> None:
    """A webhook stored for a host that is no longer allowed (or resolves elsewhere now):
    the delivery worker checks again and sends nothing."""
    receiver = await Receiver().start()
    units = unit_of_work(clean)
    hook = await register(units, receiver.url(host="localhost"), ("JobSucceeded", "JobCancelled"))
    worker, engine, sender = replica(database_url, [])
    task = asyncio.create_task(worker.run())
    try:
        await project_jobs(units, 1)
        await asyncio.sleep(2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sender.close()
        await engine.dispose()
        await receiver.stop()
    assert receiver.calls == []
    async with units() as uow:
        log = await uow.webhooks.attempts(hook.webhook_id, None, 10)
    assert log
    assert all(a.error and "loopback" in a.error for a in log)


async def test_the_request_goes_to_the_checked_address_with_the_host_in_its_header() -> None:
    """`hooks.invalid` resolves (stubbed) to loopback and is allowed: the request reaches
    the address that was checked, never a second lookup, and names the host in `Host`."""
    receiver = await Receiver().start()

    async def resolver(host: str, port: int) -> list[str]:
        assert host == "hooks.invalid"
        return ["127.0.0.1"]

    sender = HttpSender(["hooks.invalid"], resolver)
    hook = use_cases.new(f"http://hooks.invalid:{receiver.port}/in?x=1", None, None, SECRET, T0)
    delivery = Delivery(
        1,
        hook.webhook_id,
        uuid.uuid4(),
        uuid.uuid4(),
        "JobSucceeded",
        '{"a":1}',
        0,
        T0,
        uuid.uuid4(),
    )
    try:
        answer = await sender.send(hook, delivery)
    finally:
        await sender.close()
        await receiver.stop()
    assert answer.status_code == 200
    (call,) = receiver.calls
    assert call.path == "/in?x=1"
    assert call.headers["host"] == f"hooks.invalid:{receiver.port}"
    assert call.headers["x-hybridq-event-id"] == str(delivery.event_id)
    assert call.signed_by(SECRET)
