"""Capture what a service publishes, inside FastStream's in-memory TestRabbitBroker."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from faststream.rabbit import RabbitBroker, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage

from shared import topology
from shared.service import the_delivery


@dataclass
class Captured:
    events: list[dict[str, Any]] = field(default_factory=list)
    batches: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    """Each event message as it travelled: (routing key, its events)."""
    dispatched: list[tuple[str, dict[str, Any], int | None]] = field(default_factory=list)
    delayed: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    dead_letters: list[tuple[bytes, dict[str, Any]]] = field(default_factory=list)
    submitted: list[dict[str, Any]] = field(default_factory=list)
    worker_messages: list[dict[str, Any]] = field(default_factory=list)

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {"raw": body}
    return data if isinstance(data, dict) else {"raw": body}


def capture(broker: RabbitBroker) -> Captured:
    """Subscribe catch-all test queues to every exchange a service publishes to."""
    seen = Captured()

    @broker.subscriber(
        RabbitQueue("test.events", routing_key=topology.EVENT_BATCHES_KEY),
        topology.EVENTS,
        decoder=the_delivery,
    )
    async def on_event(msg: RabbitMessage) -> None:
        data = json.loads(msg.body)
        assert data["schema_version"] == 2, data  # every event message is a batch (§3.2)
        seen.batches.append((msg.raw_message.routing_key or "", data["events"]))
        seen.events.extend(data["events"])

    @broker.subscriber(
        RabbitQueue("test.worker", routing_key=topology.WORKER_KEYS),
        topology.EVENTS,
        decoder=the_delivery,
    )
    async def on_worker_message(msg: RabbitMessage) -> None:
        seen.worker_messages.append(json.loads(msg.body))

    @broker.subscriber(
        RabbitQueue("test.intake", routing_key=topology.SUBMITTED_KEY),
        topology.INTAKE,
        decoder=the_delivery,
    )
    async def on_submitted(msg: RabbitMessage) -> None:
        seen.submitted.append(_json(msg.body))

    for site in ("public", "private"):

        @broker.subscriber(
            RabbitQueue(f"test.dispatch.{site}", routing_key=site),
            topology.DISPATCH,
            decoder=the_delivery,
        )
        async def on_dispatch(msg: RabbitMessage) -> None:
            seen.dispatched.append(
                (msg.raw_message.routing_key or "", _json(msg.body), msg.raw_message.priority)
            )

    for tier in topology.DELAY_TIERS:

        @broker.subscriber(
            RabbitQueue(f"test.{tier.name}", routing_key=tier.name),
            topology.DELAY,
            decoder=the_delivery,
        )
        async def on_delay(msg: RabbitMessage) -> None:
            seen.delayed.append((msg.raw_message.routing_key or "", json.loads(msg.body)))

    @broker.subscriber(
        RabbitQueue("test.dead-letters"), topology.DEAD_LETTER_EXCHANGE, decoder=the_delivery
    )
    async def on_dead_letter(msg: RabbitMessage) -> None:
        seen.dead_letters.append((msg.body, dict(msg.headers)))

    return seen
