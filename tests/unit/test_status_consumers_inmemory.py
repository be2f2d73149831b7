"""The status events consumer's settle decisions on FastStream's in-memory broker.

The projection is faked, so this runs without Postgres; the same cases run on the real
broker and database in tests/integration/test_status_hostile.py and
test_status_db_refusal.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from faststream.rabbit import RabbitBroker, RabbitQueue, TestRabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from faststream.rabbit.message import RabbitMessage as Delivery

from services.status.consumers import subscribe_events
from services.status.db_errors import DatabaseAway
from services.status.ingest import Arrival, Outcome
from shared import topology
from shared.bus import Bus
from shared.contracts import events as ev
from shared.dead_letters import REASON_HEADER
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
    subscribe_events(broker, Bus(broker), projector)  # type: ignore[arg-type]
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
