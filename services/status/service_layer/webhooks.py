"""Webhooks' use cases: register and remove a webhook, queue what the projection recorded
(in the projection's own transaction), claim due deliveries and settle an attempt.

Sending is a port (`Sender`): the adapter (adapters/webhook_client.py) resolves the host,
checks the address and POSTs; tests pass their own.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID, uuid4

from services.status.domain import webhooks as rules
from services.status.domain.webhooks import Webhook
from services.status.service_layer.unit_of_work import (
    Attempt,
    Delivery,
    StoredFold,
    UnitOfWork,
    UnitOfWorkFactory,
)
from shared.contracts.events import AnyEvent


class UnknownEvents(ValueError):
    """A webhook named event types that do not exist."""


def new(
    url: str,
    events: Sequence[str] | None,
    job_type: str | None,
    secret: str | None,
    now: datetime,
) -> Webhook:
    """A webhook to register (the URL is checked by the caller, who resolves it): its events
    default to the terminal ones, its secret to 32 random bytes in hex."""
    chosen = tuple(dict.fromkeys(events)) if events else rules.TERMINAL_EVENTS
    unknown = sorted(set(chosen) - rules.EVENT_TYPES)
    if unknown:
        known = ", ".join(sorted(rules.EVENT_TYPES))
        raise UnknownEvents(f"unknown event types {', '.join(unknown)}; known: {known}")
    rules.target(url)
    return Webhook(
        webhook_id=uuid4(),
        url=url,
        events=chosen,
        job_type=job_type,
        secret=secret or secrets.token_hex(32),
        created_at=now,
    )


async def register(uow: UnitOfWork, hook: Webhook) -> Webhook:
    await uow.webhooks.add(hook)
    return hook


async def queue_projected(
    uow: UnitOfWork, fresh: Sequence[AnyEvent], saved: Sequence[StoredFold]
) -> None:
    """Queue each newly recorded event for every webhook that wants it, in the transaction
    that records it (no dual write: the event and its deliveries commit together)."""
    hooks = await uow.webhooks.all()
    if not hooks:
        return
    job_types = {s.fold.view.job_id: s.fold.view.job_type for s in saved}
    pairs = rules.wanted(hooks, fresh, job_types)
    if pairs:
        await uow.webhooks.queue(pairs)


@dataclass(frozen=True)
class Answer:
    """What came of one POST: the receiver's status code, or why there was none."""

    status_code: int | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Sender(Protocol):
    async def send(self, hook: Webhook, delivery: Delivery) -> Answer: ...


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = rules.RETRY_BASE_SECONDS
    max_seconds: float = rules.RETRY_MAX_SECONDS
    give_up_after: timedelta = rules.GIVE_UP_AFTER


def attempt_of(delivery: Delivery, answer: Answer, now: datetime, policy: RetryPolicy) -> Attempt:
    """The log entry of one try: delivered on a 2xx; otherwise retrying after the capped
    backoff, or failed once it has been tried for `policy.give_up_after`."""
    next_at = None
    if answer.delivered:
        outcome = "delivered"
    else:
        next_at = rules.next_try(
            delivery.failures + 1,
            delivery.queued_at,
            now,
            base=policy.base_seconds,
            cap=policy.max_seconds,
            give_up_after=policy.give_up_after,
        )
        outcome = "retrying" if next_at is not None else "failed"
    return Attempt(
        delivery_id=delivery.delivery_id,
        webhook_id=delivery.webhook_id,
        event_id=delivery.event_id,
        job_id=delivery.job_id,
        event_type=delivery.event_type,
        attempted_at=now,
        outcome=outcome,
        status_code=answer.status_code,
        error=answer.error,
        next_try_at=next_at,
    )


async def claim(
    units: UnitOfWorkFactory, webhook_id: UUID, now: datetime, lease_seconds: float, limit: int
) -> list[Delivery]:
    async with units() as uow:
        return await uow.webhooks.claim(
            webhook_id, now, now + timedelta(seconds=lease_seconds), uuid4(), limit
        )


async def settle(
    units: UnitOfWorkFactory,
    delivery: Delivery,
    answer: Answer,
    now: datetime,
    policy: RetryPolicy,
) -> Attempt:
    attempt = attempt_of(delivery, answer, now, policy)
    async with units() as uow:
        await uow.webhooks.settle(delivery, attempt)
    return attempt
