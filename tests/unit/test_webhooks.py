"""Webhooks on the in-memory unit of work: signatures, backoff and giving up, SSRF refusals
with name resolution stubbed (nothing is sent anywhere), deliveries queued with the
projection, a job's events in order, and a slow receiver holding up no other webhook."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.status.adapters import webhook_client
from services.status.adapters.webhook_client import HttpSender
from services.status.domain import webhooks as rules
from services.status.domain.arrivals import Arrival
from services.status.domain.webhooks import RefusedUrl, Webhook
from services.status.entrypoints.webhook_delivery import DeliveryWorker
from services.status.service_layer import projecting
from services.status.service_layer import webhooks as use_cases
from services.status.service_layer.unit_of_work import Delivery
from services.status.service_layer.webhooks import Answer, RetryPolicy
from shared.contracts import events as ev
from shared.contracts.jobs import Site
from tests.unit.fake_store import FakeStore

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def lifecycle(job_id: uuid.UUID, job_type: str = "noop", ok: bool = True) -> list[ev.AnyEvent]:
    at = T0
    events: list[ev.AnyEvent] = [
        ev.JobSubmittedEvent(job_id=job_id, job_type=job_type, occurred_at=at),
        ev.JobRouted(
            job_id=job_id,
            site=Site.PUBLIC,
            rule="r",
            reason="x",
            priority=5,
            occurred_at=at + timedelta(seconds=1),
        ),
        ev.JobStarted(
            job_id=job_id,
            site=Site.PUBLIC,
            attempt=1,
            worker="w",
            occurred_at=at + timedelta(seconds=2),
        ),
    ]
    end = at + timedelta(seconds=3)
    if ok:
        events.append(
            ev.JobSucceeded(
                job_id=job_id, site=Site.PUBLIC, attempt=1, duration_seconds=1, occurred_at=end
            )
        )
    else:
        events.append(ev.JobCancelled(job_id=job_id, reason="operator", occurred_at=end))
    return events


def hook(events: tuple[str, ...] = rules.TERMINAL_EVENTS, job_type: str | None = None) -> Webhook:
    return use_cases.new("https://example.com/h", events, job_type, "s" * 32, T0)


async def project(store: FakeStore, events: list[ev.AnyEvent]) -> None:
    async with store.begin() as uow:
        await projecting.project(uow, [Arrival(e) for e in events])


# -- signatures and backoff ---------------------------------------------------------------
def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"type":"JobSucceeded"}'
    expected = hmac.new(b"topsecret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert rules.signature("topsecret", 1700000000, body) == "sha256=" + expected
    assert rules.verify("topsecret", "1700000000", body, "sha256=" + expected)
    assert not rules.verify("topsecret", "1700000001", body, "sha256=" + expected)
    assert not rules.verify("other", "1700000000", body, "sha256=" + expected)
    assert not rules.verify("topsecret", "1700000000", body + b" ", "sha256=" + expected)
    assert not rules.verify("topsecret", "soon", body, "sha256=" + expected)


def test_backoff_doubles_up_to_the_cap_and_gives_up_after_24_hours() -> None:
    waits = [rules.backoff_seconds(n, base=1, cap=60) for n in range(1, 10)]
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert rules.backoff_seconds(10_000, base=1, cap=900) == 900
    queued = T0
    assert rules.next_try(3, queued, T0 + timedelta(hours=23)) is not None
    assert rules.next_try(3, queued, T0 + timedelta(hours=23, minutes=59, seconds=59)) is None
    assert rules.next_try(1, queued, T0) == T0 + timedelta(seconds=rules.RETRY_BASE_SECONDS)


# -- SSRF: URLs and addresses, resolution stubbed -----------------------------------------
def stub(*addresses: str) -> Any:
    async def resolver(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolver


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "public"),  # carrier-grade NAT: "not a public address"
    ],
)
async def test_names_resolving_to_internal_addresses_are_refused(address: str, kind: str) -> None:
    with pytest.raises(RefusedUrl, match=kind):
        await webhook_client.checked("https://hooks.example.com/x", [], stub(address))


async def test_one_internal_address_among_public_ones_refuses_the_host() -> None:
    with pytest.raises(RefusedUrl, match="private"):
        await webhook_client.checked(
            "https://a.example.com/", [], stub("93.184.216.34", "10.0.0.1")
        )


async def test_public_addresses_pass_and_the_checked_one_is_used() -> None:
    t, address = await webhook_client.checked(
        "https://a.example.com:8443/p?q=1", [], stub("93.184.216.34")
    )
    assert (t.scheme, t.host, t.port, t.path, address) == (
        "https",
        "a.example.com",
        8443,
        "/p?q=1",
        "93.184.216.34",
    )


async def test_allowed_hosts_may_resolve_anywhere() -> None:
    _, address = await webhook_client.checked(
        "http://Recv.Local/", ["recv.local"], stub("10.0.0.7")
    )
    assert address == "10.0.0.7"
    with pytest.raises(RefusedUrl):
        await webhook_client.checked("http://other.local/", ["recv.local"], stub("10.0.0.7"))


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "file:///etc/passwd", "http://u:p@example.com/", "http:///x"]
)
def test_only_plain_http_urls(url: str) -> None:
    with pytest.raises(RefusedUrl):
        rules.target(url)


async def test_a_delivery_to_a_refused_address_is_a_failed_attempt_and_sends_nothing() -> None:
    sender = HttpSender([], stub("169.254.169.254"))
    delivery = Delivery(
        1, uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "JobSucceeded", "{}", 0, T0, uuid.uuid4()
    )
    answer = await sender.send(hook(), delivery)
    await sender.close()
    assert answer.status_code is None
    assert answer.error is not None
    assert "link-local" in answer.error


# -- queued with the projection -----------------------------------------------------------
async def test_deliveries_are_queued_in_the_projections_transaction() -> None:
    store = FakeStore(Clock())
    terminal, everything = hook(), hook(tuple(sorted(rules.EVENT_TYPES)))
    other_type = hook(job_type="sleep")
    async with store.begin() as uow:
        for h in (terminal, everything, other_type):
            await use_cases.register(uow, h)
    events = lifecycle(uuid.uuid4())
    await project(store, events)
    await project(store, events)  # duplicates queue nothing more
    queued = [(d.webhook_id, d.event.type) for d in store.state.deliveries]
    assert queued.count((terminal.webhook_id, "JobSucceeded")) == 1
    assert [t for w, t in queued if w == terminal.webhook_id] == ["JobSucceeded"]
    assert len([t for w, t in queued if w == everything.webhook_id]) == 4
    assert [t for w, t in queued if w == other_type.webhook_id] == []


async def test_a_failed_projection_queues_nothing() -> None:
    store = FakeStore(Clock())
    async with store.begin() as uow:
        await use_cases.register(uow, hook())

    async def failing() -> None:
        async with store.begin() as uow:
            await projecting.project(uow, [Arrival(e) for e in lifecycle(uuid.uuid4())])
            raise RuntimeError("the transaction fails")

    with pytest.raises(RuntimeError):
        await failing()
    assert store.state.deliveries == []


# -- order, retries, giving up ------------------------------------------------------------
class Receiver:
    """A sender that answers from a script (per event type) and records what it got."""

    def __init__(self, answers: dict[str, list[Answer]] | None = None) -> None:
        self.answers = answers or {}
        self.got: list[tuple[uuid.UUID, str]] = []

    async def send(self, hook: Webhook, delivery: Delivery) -> Answer:
        self.got.append((delivery.job_id, delivery.event_type))
        script = self.answers.get(delivery.event_type)
        return script.pop(0) if script else Answer(status_code=204)


async def drain(worker: DeliveryWorker, clock: Clock, rounds: int, step: float) -> None:
    for _ in range(rounds):
        await worker.round()
        flying = [t for ts in worker.in_flight.values() for t in ts]
        if flying:
            await asyncio.wait(flying)
        clock.now += timedelta(seconds=step)


async def test_a_jobs_events_go_in_order_and_wait_for_a_retried_one() -> None:
    clock = Clock()
    store = FakeStore(clock)
    every = hook(("JobRouted", "JobStarted", "JobSucceeded"))
    async with store.begin() as uow:
        await use_cases.register(uow, every)
    job = uuid.uuid4()
    events = lifecycle(job)
    await project(store, [events[3], events[0], events[2], events[1]])  # out of order
    receiver = Receiver({"JobRouted": [Answer(500), Answer(error="timeout"), Answer(200)]})
    policy = RetryPolicy(base_seconds=1, max_seconds=4, give_up_after=timedelta(hours=24))
    worker = DeliveryWorker(store.begin, receiver, policy=policy, clock=clock)
    await drain(worker, clock, 12, 5)
    assert [t for _, t in receiver.got] == [
        "JobRouted",
        "JobRouted",
        "JobRouted",
        "JobStarted",
        "JobSucceeded",
    ]
    log = store.state.attempts
    assert [a.outcome for a in log] == [
        "retrying",
        "retrying",
        "delivered",
        "delivered",
        "delivered",
    ]
    assert log[0].status_code == 500
    assert log[1].error == "timeout"


async def test_a_delivery_given_up_after_24_hours_lets_the_next_event_go() -> None:
    clock = Clock()
    store = FakeStore(clock)
    h = hook(("JobStarted", "JobSucceeded"))
    async with store.begin() as uow:
        await use_cases.register(uow, h)
    job = uuid.uuid4()
    await project(store, lifecycle(job))
    receiver = Receiver({"JobStarted": [Answer(503)] * 1000})
    policy = RetryPolicy(base_seconds=60, max_seconds=3600, give_up_after=timedelta(hours=24))
    worker = DeliveryWorker(store.begin, receiver, policy=policy, clock=clock)
    await drain(worker, clock, 60, 3600)
    started = [a for a in store.state.attempts if a.event_type == "JobStarted"]
    assert started[-1].outcome == "failed"
    assert started[-1].next_try_at is None
    assert all(a.outcome == "retrying" for a in started[:-1])
    assert started[-1].attempted_at - T0 <= timedelta(hours=24)
    assert receiver.got[-1] == (job, "JobSucceeded")
    state = {d.event.type: d.state for d in store.state.deliveries}
    assert state == {"JobStarted": "failed", "JobSucceeded": "delivered"}


async def test_a_hanging_receiver_holds_up_no_other_webhook() -> None:
    clock = Clock()
    store = FakeStore(clock)
    slow, fast = hook(), hook()
    async with store.begin() as uow:
        await use_cases.register(uow, slow)
        await use_cases.register(uow, fast)
    for _ in range(20):
        await project(store, lifecycle(uuid.uuid4()))
    hang = asyncio.Event()
    got: list[uuid.UUID] = []

    class Sender:
        async def send(self, h: Webhook, delivery: Delivery) -> Answer:
            if h.webhook_id == slow.webhook_id:
                await hang.wait()
            got.append(delivery.job_id)
            return Answer(200)

    policy = RetryPolicy()
    worker = DeliveryWorker(store.begin, Sender(), policy=policy, concurrency=3, clock=clock)
    for _ in range(10):
        await worker.round()
        await asyncio.sleep(0.01)
    assert len(got) == 20  # every delivery of the fast webhook
    assert len(worker.in_flight[slow.webhook_id]) == 3  # the slow one's own slots only
    hang.set()
    await asyncio.sleep(0.01)
