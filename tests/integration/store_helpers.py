"""Short cuts of the tests onto the status store, through the same use cases production runs."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.adapters.postgres import unit_of_work
from services.status.domain.arrivals import Arrival, Outcome
from services.status.service_layer.projecting import project
from shared.contracts.events import AnyEvent, Event


async def apply_events(engine: AsyncEngine, events: Sequence[Event]) -> list[AnyEvent]:
    """Project events (unrestricted publisher) in one transaction; returns the new ones."""
    arrivals = [Arrival(e) for e in events]  # type: ignore[arg-type]
    async with unit_of_work(engine)() as uow:
        outcomes = await project(uow, arrivals)
    fresh = {
        a.event.event_id: a.event
        for a, o in zip(arrivals, outcomes, strict=True)
        if o is Outcome.PROJECTED
    }
    return list(fresh.values())
