"""What the routes take from the application state (set up in the app's lifespan)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from faststream.rabbit import RabbitBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.entrypoints.http.streams import StreamSlots
from services.status.operations import BackendUnavailable, PolicyRefusal
from shared.bus import Bus
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


def policy_error(exc: PolicyRefusal, field_prefix: str = "") -> HTTPException:
    """422 with the refusal as a field error."""
    refusal = exc.refusal
    return HTTPException(
        422,
        {
            "detail": refusal.reason,
            "errors": [{"field": f"{field_prefix}{refusal.field}", "message": refusal.reason}],
        },
    )


def unavailable(exc: BackendUnavailable) -> HTTPException:
    """503: the broker or database did not answer; the client may retry."""
    return HTTPException(503, str(exc), headers={"Retry-After": "5"})
