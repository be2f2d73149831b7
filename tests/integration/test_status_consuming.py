"""The status service's consuming side runs on its own thread (services/status/consuming.py)."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from services.status import queries
from services.status.consuming import Consuming
from shared.bus import Bus, make_broker
from shared.contracts import events as ev
from shared.settings import StatusSettings
from tests.integration.ingest_harness import eventually

pytestmark = pytest.mark.connected


def settings(amqp_url: str, database_url: str) -> StatusSettings:
    return StatusSettings(AMQP_URL=amqp_url, DATABASE_URL=database_url)  # type: ignore[call-arg]


async def test_it_projects_on_its_own_thread_and_stops_cleanly(
    amqp_url: str, database_url: str
) -> None:
    consuming = Consuming(settings(amqp_url, database_url))
    await asyncio.to_thread(consuming.start)
    thread = next(t for t in threading.enumerate() if t.name == "status-consuming")
    broker = make_broker(amqp_url, 1)
    await broker.connect()
    engine = create_async_engine(database_url)
    try:
        job_id = uuid.uuid4()
        await Bus(broker).event(ev.JobSubmittedEvent(job_id=job_id, job_type="noop"))

        async def seen() -> bool:
            return await queries.get_job(engine, job_id) is not None

        await eventually(seen, 20, "the event projected by the consuming thread")
    finally:
        await consuming.stopped()
        await broker.stop()
        await engine.dispose()
    assert not thread.is_alive()


async def test_a_start_that_fails_raises_to_the_caller(database_url: str) -> None:
    """No broker at that address: start-up fails, and says so, instead of serving an API
    whose projection never runs."""
    failed: list[bool] = []
    consuming = Consuming(
        settings("amqp://guest:guest@127.0.0.1:1/", database_url), lambda: failed.append(True)
    )
    with pytest.raises(ConnectionError, match="Connect call failed"):
        await asyncio.to_thread(consuming.start, 60.0)
    assert failed == []  # a failed start is the caller's to report, not a crash
