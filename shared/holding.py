"""Holding through broker trouble: what is the broker's fault never spends a message's
delivery budget.

A quorum queue counts every return of a delivery (a `nack` with requeue, a channel closed
with it) against its `x-delivery-limit`. Handing a delivery back because a publish failed
while the broker was in trouble (a node lost, a channel being restored, a leader being
elected) would spend that budget on the broker's fault, and during a failover (seconds of
refused or failing publishes, the delivery back at once) would burn it in a tight loop:
issue 25 saw 420 of 600 jobs dead-lettered with reason `delivery_limit`. Instead the work
is tried again in-process for as long as the trouble lasts and the delivery's channel
lives; a delivery then comes back only when its channel is lost with its node.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiormq.exceptions import (
    AMQPConnectionError,
    ChannelAccessRefused,
    ChannelClosed,
    ChannelInvalidStateError,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
    DeliveryError,
    PublishError,
)

from shared.errors import RetryableError

log = logging.getLogger("hybridq.holding")

T = TypeVar("T")

FIRST_WAIT_SECONDS = 0.2
MAX_WAIT_SECONDS = 2.0
"""Tried again after 0.2 s, the wait doubling to at most 2 s: a quorum queue elects a new
leader, and a connection moves to another node, within seconds."""
LOG_EVERY_SECONDS = 30.0


def broker_trouble(exc: BaseException) -> bool:
    """A failure that is the broker's (or the network's, or the database's), not the
    message's: a connection or channel lost or being restored, a publish the broker
    refused (`basic.nack`) or did not confirm in time, a database away. Not a
    `basic.return` (no queue took the message: a topology to fix) nor a channel the broker
    closed over a missing, refused or inequivalent entity."""
    if isinstance(exc, PublishError):
        return False
    if isinstance(exc, ChannelAccessRefused | ChannelNotFoundEntity | ChannelPreconditionFailed):
        return False
    return isinstance(
        exc,
        AMQPConnectionError
        | ChannelClosed
        | ChannelInvalidStateError
        | DeliveryError
        | ConnectionError
        | TimeoutError
        | RetryableError,
    )


class DeliveryLost(Exception):
    """The channel of a held delivery closed: the broker gives the delivery back (to this
    service on its new channel, or to another consumer); it is neither acked nor handed
    back by the holder."""


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


async def through_trouble(
    work: Callable[[], Awaitable[T]], alive: Callable[[], bool], what: str
) -> T:
    """`work()`, tried again while it fails with `broker_trouble` and `alive()` (the
    delivery it is for can still be settled). Raises `DeliveryLost` once `alive()` is
    False after such a failure, and any other failure as it is. `work` must be idempotent
    (the same message ids and event ids on every try)."""
    wait = FIRST_WAIT_SECONDS
    first: float | None = None
    logged = 0.0
    while True:
        try:
            result = await work()
        except Exception as exc:
            if not broker_trouble(exc):
                raise
            if not alive():
                raise DeliveryLost(f"{what}: the delivery's channel closed") from exc
            now = time.monotonic()
            if first is None or now - logged >= LOG_EVERY_SECONDS:
                log.warning(
                    "broker trouble; holding the delivery and trying again",
                    extra={
                        "what": what,
                        "cause": _one_line(exc),
                        "held_seconds": 0.0 if first is None else round(now - first, 1),
                    },
                )
                logged = now
            first = now if first is None else first
        else:
            if first is not None:
                log.info(
                    "held delivery went through",
                    extra={"what": what, "held_seconds": round(time.monotonic() - first, 1)},
                )
            return result
        await asyncio.sleep(wait)
        wait = min(wait * 2, MAX_WAIT_SECONDS)
        if not alive():
            raise DeliveryLost(f"{what}: the delivery's channel closed")
