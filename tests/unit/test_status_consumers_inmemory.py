"""The status events consumer's settle decisions on FastStream's in-memory broker.

The projection is faked, so this runs without Postgres; the same cases run on the real
broker and database in tests/integration/test_status_hostile.py and
test_status_db_refusal.py.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from faststream.rabbit import RabbitBroker, RabbitQueue, TestRabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from faststream.rabbit.message import RabbitMessage as Delivery

from services.status.adapters.db_errors import DatabaseAway
from services.status.domain.arrivals import Arrival, Outcome
from services.status.entrypoints.consumers import events
from shared import topology
from shared.bus import Bus
from shared.contracts import events as ev
from shared.dead_letters import REASON_HEADER
from shared.identity import WorkerUsers
from shared.service import the_delivery


class FakeProjector:
    def __init__(self, outcome: Outcome | Exception = Outcome.PROJECTED) -> None:
        self.outcome = outcome
        self.arrivals: list[Arrival] = []

    async def project(self, arrival: Arrival) -> Outcome:
        self.arrivals.append(arrival)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def status_events(projector: FakeProjector) -> tuple[RabbitBroker, list[dict[str, Any]]]:
    broker = RabbitBroker(apply_types=False)  # as make_broker: handlers get the delivery
    events.subscribe(broker, Bus(broker), projector, WorkerUsers())  # type: ignore[arg-type]
    letters: list[dict[str, Any]] = []

    @broker.subscriber(RabbitQueue("test.dlx"), topology.DEAD_LETTER_EXCHANGE, decoder=the_delivery)
    async def on_dead_letter(msg: RabbitMessage) -> None:
        letters.append(dict(msg.headers))

    return broker, letters


async def publish(broker: RabbitBroker, body: bytes, **kwargs: Any) -> None:
    await broker.publish(body, exchange=topology.EVENTS, routing_key="events.private", **kwargs)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b"[" * 50_000 + b"]" * 50_000, "malformed_json"),
        (b'{"type": "JobStarted", "job_id": "\\u0000"}', "schema"),
        (b'"x' + b"x" * (2 << 20) + b'"', "oversize"),
    ],
)
async def test_unreadable_events_are_dead_lettered_with_a_reason(body: bytes, reason: str) -> None:
    projector = FakeProjector()
    broker, letters = status_events(projector)
    async with TestRabbitBroker(broker):
        await publish(broker, body)
    assert [letter[REASON_HEADER] for letter in letters] == [reason]
    assert projector.arrivals == []


async def test_a_database_away_hands_the_event_back_and_dead_letters_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settled: list[str] = []

    async def nack(self: RabbitMessage, **kwargs: Any) -> None:
        settled.append(f"nack requeue={kwargs.get('requeue')}")

    async def ack(self: RabbitMessage, **kwargs: Any) -> None:
        settled.append("ack")

    monkeypatch.setattr(Delivery, "nack", nack)
    monkeypatch.setattr(Delivery, "ack", ack)
    projector = FakeProjector(DatabaseAway("away"))
    broker, letters = status_events(projector)
    event = ev.JobSubmittedEvent(job_id=uuid.uuid4(), job_type="noop")
    async with TestRabbitBroker(broker):
        await publish(broker, event.model_dump_json().encode())
    assert len(projector.arrivals) == 1
    assert letters == []
    assert settled[0] == "nack requeue=True"


async def test_a_forbidden_report_is_dead_lettered_as_forbidden() -> None:
    projector = FakeProjector(Outcome.FORBIDDEN)
    broker, letters = status_events(projector)
    event = ev.JobStarted(job_id=uuid.uuid4(), site="private", attempt=1, worker="w")  # type: ignore[arg-type]
    async with TestRabbitBroker(broker):
        await publish(broker, event.model_dump_json().encode())
    assert [letter[REASON_HEADER] for letter in letters] == ["forbidden"]


class SelectiveProjector(FakeProjector):
    """Refuses (as the store would, for its content) the events of one job."""

    def __init__(self, poison: uuid.UUID) -> None:
        super().__init__()
        self.poison = poison

    async def project(self, arrival: Arrival) -> Outcome:
        self.arrivals.append(arrival)
        if arrival.event.job_id == self.poison:
            from shared.errors import PermanentError

            raise PermanentError("refused by the store")
        return Outcome.PROJECTED


async def test_one_bad_event_in_a_batch_is_dead_lettered_and_its_neighbours_apply() -> None:
    """Contract §3.2: each event of a batch on its own; the batch acked once all are settled."""
    good, poison = uuid.uuid4(), uuid.uuid4()
    projector = SelectiveProjector(poison)
    broker, letters = status_events(projector)
    batch = {
        "schema_version": 2,
        "events": [
            ev.JobSubmittedEvent(job_id=good, job_type="noop").model_dump(mode="json"),
            {"type": "JobStarted", "job_id": str(good)},  # unreadable: no site, no attempt
            ev.JobSubmittedEvent(job_id=poison, job_type="noop").model_dump(mode="json"),
            ev.JobCancelled(job_id=good, reason="stop").model_dump(mode="json"),
        ],
    }
    async with TestRabbitBroker(broker):
        await publish(broker, json.dumps(batch).encode())
    assert [a.event.job_id for a in projector.arrivals] == [good, poison, good]
    assert sorted(letter[REASON_HEADER] for letter in letters) == ["permanent_error", "schema"]
    assert {letter["x-hybridq-job-id"] for letter in letters} == {str(good), str(poison)}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"schema_version": 3, "events": []}', "unknown_schema_version"),
        (b'{"schema_version": 2, "events": []}', "schema"),
        (b'{"schema_version": 2, "events": "x"}', "schema"),
        (b'{"schema_version": 2, "events": [{}], "extra": 1}', "schema"),
    ],
)
async def test_a_message_that_is_no_batch_is_dead_lettered_whole(body: bytes, reason: str) -> None:
    projector = FakeProjector()
    broker, letters = status_events(projector)
    async with TestRabbitBroker(broker):
        await publish(broker, body)
    assert [letter[REASON_HEADER] for letter in letters] == [reason]
    assert projector.arrivals == []
