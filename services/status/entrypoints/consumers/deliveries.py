"""One delivery, however a consumer took it: its bytes, the broker user that published it
(the validated AMQP `user_id`), and how to settle it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from faststream.rabbit.annotations import RabbitMessage

from shared import topology
from shared.bus import Bus

log = logging.getLogger("hybridq.status.consumers")


def user_id_of(msg: RabbitMessage) -> str | None:
    """The validated AMQP `user_id` of a delivery (the publisher's broker user)."""
    value = getattr(msg.raw_message, "user_id", None)
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Taken:
    body: bytes
    user_id: str | None
    ack: Callable[[], Awaitable[None]]
    hand_back: Callable[[], Awaitable[None]]  # nack + requeue

    @classmethod
    def of(cls, msg: RabbitMessage) -> Taken:
        return cls(msg.body, user_id_of(msg), msg.ack, lambda: msg.nack(requeue=True))


async def dead_letter_and_ack(
    taken: Taken,
    bus: Bus,
    reason: str,
    detail: str,
    job_id: str | None = None,
    source_queue: str = topology.STATUS_EVENTS.name,
) -> None:
    """Dead-letter a delivery the message's own fault stops; if the broker refuses the
    dead letter, hand the delivery back instead (transient), never drop it."""
    try:
        await bus.dead_letter(
            taken.body, reason=reason, source_queue=source_queue, detail=detail, job_id=job_id
        )
    except Exception:
        log.warning("dead letter not published; handing the delivery back", exc_info=True)
        await taken.hand_back()
        return
    await taken.ack()
