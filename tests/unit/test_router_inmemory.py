"""Router behaviour on FastStream's in-memory broker."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from faststream.rabbit import TestRabbitBroker

from services.router.app import Router, build
from services.router.intake import event_id
from shared import topology
from shared.placement.rules import load_rules
from shared.settings import DEFAULT_RULES_FILE, RouterSettings
from tests.unit.capture import Captured, capture
from tests.unit.fake_ledger import FakeLedgerStore

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
def router() -> Router:
    return build(
        RouterSettings(),
        rules=load_rules(DEFAULT_RULES_FILE),
        private_backlog=lambda: 0,
        clock=lambda: NOW,
        ledger_store=FakeLedgerStore(),
    )


def job(**fields: object) -> dict[str, object]:
    return {"job_id": str(uuid.uuid4()), "job_type": "noop", **fields}


async def publish(router: Router, body: bytes | dict[str, object]) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    await router.broker.publish(raw, exchange=topology.INTAKE, routing_key=topology.SUBMITTED_KEY)


async def test_valid_job_is_announced_and_dispatched(router: Router) -> None:
    seen: Captured = capture(router.broker)
    spec = job(priority=7)
    async with TestRabbitBroker(router.broker):
        await publish(router, spec)
    assert seen.types() == ["JobSubmitted", "JobRouted"]
    routed = seen.events[1]
    assert (routed["site"], routed["rule"], routed["priority"]) == ("private", "default", 7)
    [(key, body, priority)] = seen.dispatched
    assert (key, body["job_id"], body["attempt"], priority) == ("private", spec["job_id"], 1, 7)


async def test_duplicate_job_id_is_dispatched_once(router: Router) -> None:
    seen = capture(router.broker)
    spec = job()
    async with TestRabbitBroker(router.broker):
        await publish(router, spec)
        await publish(router, spec)
    assert len(seen.dispatched) == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{nope", "malformed_json"),
        (json.dumps(job(params={"blob": "x" * 270_000})).encode(), "oversize"),
        (json.dumps(job(schema_version=2)).encode(), "unknown_schema_version"),
        (
            json.dumps(job(delay_seconds=5, not_before="2030-01-01T00:00:00+00:00")).encode(),
            "schema",
        ),
        (json.dumps(job(colour="red")).encode(), "schema"),
    ],
)
async def test_unprocessable_messages_are_dead_lettered_with_reason(
    router: Router, body: bytes, reason: str
) -> None:
    seen = capture(router.broker)
    async with TestRabbitBroker(router.broker):
        await publish(router, body)
    [(dead_body, headers)] = seen.dead_letters
    assert dead_body == body
    assert headers["x-hybridq-reason"] == reason
    assert headers["x-hybridq-source-queue"] == "jobs.router.intake"
    assert not seen.dispatched
    if reason != "malformed_json":  # a job_id could be read: the job is rejected
        assert seen.types() == ["JobRejected"]
        # a redelivered copy re-emits the same event, which the projection skips
        assert seen.events[0]["event_id"] == str(
            event_id(UUID(json.loads(body)["job_id"]), "rejected")
        )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_attempts", "3"),
        ("priority", "5"),
        ("delay_seconds", "1"),
        ("timeout_seconds", "30"),
        ("max_attempts", True),
        ("priority", 5.5),
    ],
)
async def test_a_string_where_a_number_is_expected_is_refused_naming_the_field(
    router: Router, field: str, value: object
) -> None:
    """JSON types are strict (contract 3.1): not quietly converted."""
    seen = capture(router.broker)
    async with TestRabbitBroker(router.broker):
        await publish(router, job(**{field: value}))
    [(_, headers)] = seen.dead_letters
    assert headers["x-hybridq-reason"] == "schema"
    assert field in headers["x-hybridq-detail"]
    assert not seen.dispatched
    [rejected] = seen.events
    assert rejected["type"] == "JobRejected"
    assert [e["field"] for e in rejected["errors"]] == [field]


async def test_an_integer_is_a_number_and_strings_json_must_use_are_accepted(
    router: Router,
) -> None:
    seen = capture(router.broker)
    spec = job(
        delay_seconds=0,
        timeout_seconds=30,
        max_attempts=2,
        target_cloud="public",
        data_classification="public",
        parent_id=str(uuid.uuid4()),
    )
    async with TestRabbitBroker(router.broker):
        await publish(router, spec)
    assert seen.types() == ["JobSubmitted", "JobRouted"]


async def test_confidential_job_aimed_at_public_is_rejected_not_dead_lettered(
    router: Router,
) -> None:
    seen = capture(router.broker)
    async with TestRabbitBroker(router.broker):
        await publish(router, job(data_classification="confidential", target_cloud="public"))
    assert seen.types() == ["JobSubmitted", "JobRejected"]
    assert "residency" in seen.events[1]["reason"]
    assert not seen.dispatched
    assert not seen.dead_letters


async def test_delayed_job_is_scheduled_into_a_delay_tier(router: Router) -> None:
    seen = capture(router.broker)
    async with TestRabbitBroker(router.broker):
        await publish(router, job(delay_seconds=30))
    assert seen.types() == ["JobSubmitted", "JobScheduled"]
    assert seen.events[1]["not_before"].startswith("2026-11-29T12:00:30")
    [(tier, body)] = seen.delayed
    assert tier == "jobs.delay.25600ms"  # longest tier not past the 30 s wait
    assert body["announce"] is True
    assert not seen.dispatched


async def test_due_job_is_dispatched_once_its_time_has_come(router: Router) -> None:
    seen = capture(router.broker)
    due = {
        **job(),
        "site": "public",
        "rule": "explicit",
        "announce": True,
        "run_at": (NOW - timedelta(seconds=1)).isoformat(),
    }
    later = {**job(), "site": "public", "run_at": (NOW + timedelta(seconds=3)).isoformat()}
    async with TestRabbitBroker(router.broker):
        for body in (due, later):
            await router.broker.publish(
                json.dumps(body).encode(), exchange=topology.DELAY, routing_key=topology.DUE_KEY
            )
    assert [b["job_id"] for _, b, _ in seen.dispatched] == [due["job_id"]]
    assert seen.types() == ["JobRouted"]
    assert [(t, b["job_id"]) for t, b in seen.delayed] == [("jobs.delay.1600ms", later["job_id"])]


async def test_a_malformed_copy_of_an_accepted_job_is_dead_lettered_without_a_rejection(
    router: Router,
) -> None:
    seen = capture(router.broker)
    spec = job()
    async with TestRabbitBroker(router.broker):
        await publish(router, spec)
        await publish(router, {**spec, "colour": "red"})  # same job_id, fails the schema
    assert seen.types() == ["JobSubmitted", "JobRouted"]  # no JobRejected
    [(_, headers)] = seen.dead_letters
    assert headers["x-hybridq-reason"] == "schema"
    assert len(seen.dispatched) == 1


async def test_a_duplicated_due_message_dispatches_its_attempt_once(router: Router) -> None:
    seen = capture(router.broker)
    first = {**job(), "site": "public", "attempt": 2, "run_at": NOW.isoformat()}
    retry = {**first, "attempt": 3}
    async with TestRabbitBroker(router.broker):
        for body in (first, first, retry, retry, first):
            await router.broker.publish(
                json.dumps(body).encode(), exchange=topology.DELAY, routing_key=topology.DUE_KEY
            )
    assert [b["attempt"] for _, b, _ in seen.dispatched] == [2, 3]


async def test_the_same_attempt_parked_again_on_purpose_is_dispatched_again(
    router: Router,
) -> None:
    """A busy worker puts an attempt back through the delay tiers (a new parking): it must
    run, while copies of one parked message still dispatch once."""
    seen = capture(router.broker)
    parked = {**job(), "site": "private", "attempt": 1, "run_at": NOW.isoformat()}
    first = {**parked, "park_id": str(uuid.uuid4())}
    again = {**parked, "park_id": str(uuid.uuid4())}  # put back by a worker: same attempt
    async with TestRabbitBroker(router.broker):
        for body in (first, first, again, again):
            await router.broker.publish(
                json.dumps(body).encode(), exchange=topology.DELAY, routing_key=topology.DUE_KEY
            )
    assert [b["park_id"] for _, b, _ in seen.dispatched] == [first["park_id"], again["park_id"]]
