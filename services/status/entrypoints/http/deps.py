"""What the routes take from the application state (set up by the composition root), and
how the routes turn the use cases' refusals and the backends' trouble into answers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from faststream.rabbit import RabbitBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.adapters.db_errors import is_backend_error
from services.status.adapters.outbox import Relay
from services.status.entrypoints.http.errors import error_body
from services.status.entrypoints.http.streams import StreamSlots
from services.status.service_layer.operations import PolicyRefusal
from services.status.service_layer.unit_of_work import UnitOfWorkFactory
from shared.bus import Bus, confirmed_together
from shared.messages import Envelope
from shared.placement.rules import Rules
from shared.queue_depth import QueueDepths
from shared.settings import StatusSettings


@dataclass
class Resources:
    settings: StatusSettings
    engine: AsyncEngine
    reads: AsyncEngine
    """The pool for single-statement reads: autocommit and no ping before use, so a read is
    one round trip (`queries.rows` runs it again if its pooled connection was dropped)."""
    units: UnitOfWorkFactory
    """Transactions for the writes (submitting groups and schedules, cancel, redrive)."""
    relay: Relay
    broker: RabbitBroker
    bus: Bus
    rules: Rules
    depths: QueueDepths
    streams: StreamSlots = field(default_factory=lambda: StreamSlots(100))
    stats_cache: tuple[float, dict[str, Any]] | None = None
    """The last /stats answer and when it was computed (monotonic seconds)."""


async def resources(request: Request) -> Resources:
    res: Resources = request.app.state.resources
    return res


Res = Annotated[Resources, Depends(resources)]


class BackendUnavailable(Exception):
    """The broker or the database did not answer (or not in time): 503, try again."""


def policy_error(exc: PolicyRefusal, field_prefix: str = "") -> HTTPException:
    """422 with the refusal as a field error."""
    refusal = exc.refusal
    return HTTPException(
        422, error_body(refusal.reason, [(f"{field_prefix}{refusal.field}", refusal.reason)])
    )


def unavailable(exc: BackendUnavailable) -> HTTPException:
    """503: the broker or database did not answer; the client may retry."""
    return HTTPException(503, str(exc), headers={"Retry-After": "5"})


async def publish_within(res: Resources, envelope: Envelope, what: str) -> None:
    """Publish one message, confirmed within PUBLISH_TIMEOUT_SECONDS: a broker blocked by
    a resource alarm never confirms, and a client must hear so rather than hang."""
    seconds = res.settings.publish_timeout_seconds
    try:
        async with asyncio.timeout(seconds):
            await res.bus.send(envelope)
    except TimeoutError as exc:
        raise BackendUnavailable(f"the broker did not confirm {what} within {seconds:g} s") from exc
    except Exception as exc:  # anything reaching or using the broker is transient
        raise BackendUnavailable(f"the broker did not take {what}: {exc!r}") from exc


async def publish_all_within(res: Resources, envelopes: list[Envelope], what: str) -> None:
    """Publish several messages at once and await their confirms together, all within
    PUBLISH_TIMEOUT_SECONDS (the publishes leave in as few writes as the event loop
    allows; no confirm waits for another). BackendUnavailable when any is not confirmed:
    the caller cannot tell which were, so a retry sends them all again, under the same
    job_ids."""
    seconds = res.settings.publish_timeout_seconds
    try:
        async with asyncio.timeout(seconds):
            await confirmed_together(*(res.bus.send(e) for e in envelopes))
    except TimeoutError as exc:
        raise BackendUnavailable(f"the broker did not confirm {what} within {seconds:g} s") from exc
    except Exception as exc:  # anything reaching or using the broker is transient
        raise BackendUnavailable(f"the broker did not take {what}: {exc!r}") from exc


def backend_trouble(exc: Exception, what: str) -> BackendUnavailable:
    """BackendUnavailable for database or broker trouble; anything else is a bug: raised."""
    if not is_backend_error(exc):
        raise exc
    return BackendUnavailable(what)
