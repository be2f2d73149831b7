"""One `JobDeadLettered` per ending: the worker's own event and the one the status service
derives from the dead letter are the same event (same id), whichever is recorded first."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from faststream.rabbit import TestRabbitBroker

from services.status.adapters import wire
from services.status.domain.arrivals import Arrival
from services.status.domain.dead_letters import DeadLetter, ending_event
from services.status.service_layer import projecting
from shared.contracts import events as ev
from shared.contracts.jobs import Site
from tests.unit.capture import capture
from tests.unit.fake_store import FakeStore
from tests.unit.test_ingest import T0
from tests.unit.test_worker_inmemory import dispatch, placed, worker

PATHS = {
    # every way a worker dead-letters a job it can name (fail_attempt is also the status
    # service's lease sweep)
    "residency": (Site.PUBLIC, placed("public", data_classification="confidential")),
    "unknown_job_type": (Site.PUBLIC, placed("public", "no_such_type")),
    "max_attempts": (Site.PRIVATE, placed("private", "fail", attempt=2, max_attempts=2)),
    "permanent_error": (Site.PRIVATE, placed("private", "sleep", params={"seconds": "soon"})),
}


async def worker_ending(site: Site, body: bytes) -> tuple[ev.AnyEvent, DeadLetter]:
    """What the worker publishes for the ending: its JobDeadLettered and its dead letter,
    read as the status service reads them."""
    w = worker(site)
    seen = capture(w.broker)
    async with TestRabbitBroker(w.broker):
        await dispatch(w, site.value, body)
    [said] = [e for e in seen.events if e["type"] == "JobDeadLettered"]
    [(letter_body, headers)] = seen.dead_letters
    [event] = wire.read_events(json.dumps(said).encode())
    assert isinstance(event, ev.Event)
    return event, wire.read_dead_letter(letter_body, headers, None, None)


def started(job_id: uuid.UUID, site: Site) -> list[ev.Event]:
    return [
        ev.JobSubmittedEvent(job_id=job_id, job_type="noop", occurred_at=T0),
        ev.JobRouted(
            job_id=job_id,
            site=site,
            rule="default",
            reason="r",
            priority=5,
            occurred_at=T0 + timedelta(seconds=1),
        ),
    ]


async def record_both(
    store: FakeStore, event: ev.AnyEvent, letter: DeadLetter, letter_first: bool
) -> None:
    async def the_event() -> None:
        async with store.begin() as uow:
            await projecting.project(uow, [Arrival(event)])

    async def the_letter() -> None:
        async with store.begin() as uow:
            await projecting.record_dead_letter(uow, letter)

    for step in (the_letter, the_event) if letter_first else (the_event, the_letter):
        await step()


def endings(store: FakeStore, job_id: uuid.UUID) -> list[dict[str, Any]]:
    return [
        e.model_dump(mode="json")
        for e in store.events.values()
        if e.job_id == job_id and isinstance(e, ev.JobDeadLettered)
    ]


@pytest.mark.parametrize("path", sorted(PATHS))
async def test_a_dead_lettered_job_has_one_ending_whichever_copy_comes_first(path: str) -> None:
    site, body = PATHS[path]
    job_id = uuid.UUID(json.loads(body)["job_id"])
    event, letter = await worker_ending(site, body)
    assert letter.job_id == job_id
    assert letter.reason == path
    seen = []
    for letter_first in (False, True):
        store = FakeStore()
        async with store.begin() as uow:
            await projecting.project(uow, [Arrival(e) for e in started(job_id, site)])
        await record_both(store, event, letter, letter_first)
        assert store.views[job_id].fold.view.status == "dead_lettered"
        ended = endings(store, job_id)
        assert len(ended) == 1, ended  # one job, one ending
        seen.append(ended[0])
    # the same event whichever was recorded first: same id, reason, attempts and time
    assert seen[0] == seen[1]
    assert seen[0]["event_id"] == str(ending_event(letter).event_id)  # type: ignore[union-attr]
    assert seen[0]["reason"].startswith(path)
