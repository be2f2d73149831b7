"""Redrive claims on the real database: concurrent redrives of one dead letter claim it
once and dispatch it once; a failed publish stays in the outbox and the relay sends it
later, exactly once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.adapters import queries
from services.status.adapters.outbox import Relay
from services.status.adapters.postgres import unit_of_work
from services.status.adapters.tables import outbox
from services.status.domain.dead_letters import DeadLetter
from services.status.service_layer import operations
from services.status.service_layer.projecting import record_dead_letter
from services.status.service_layer.unit_of_work import RedriveSelection
from shared import topology
from shared.bus import Bus
from shared.contracts.jobs import PlacedJob, Site

pytestmark = pytest.mark.connected


class Recording:
    """A broker that confirms every publish and remembers it."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []

    async def publish(self, body: bytes, *, exchange: Any, routing_key: str, **_: Any) -> None:
        self.published.append((getattr(exchange, "name", exchange), routing_key))

    def dispatches(self) -> list[str]:
        return [key for name, key in self.published if name == topology.DISPATCH.name]


class Refusing:
    async def publish(self, *args: Any, **kwargs: Any) -> None:
        raise ConnectionResetError("broker gone")


async def dead_letter(engine: AsyncEngine) -> tuple[str, uuid.UUID]:
    job = PlacedJob(job_id=uuid.uuid4(), job_type="fail", site=Site.PRIVATE, max_attempts=1)
    letter_id = str(uuid.uuid4())
    body = job.model_dump_json()
    async with unit_of_work(engine)() as uow:
        await record_dead_letter(
            uow,
            DeadLetter(
                id=letter_id,
                job_id=job.job_id,
                job_type=job.job_type,
                site="private",
                reason="max_attempts",
                source_queue="jobs.private",
                dead_lettered_at=datetime.now(UTC),
                body=body,
                raw_body=body.encode(),
                attempts=1,
            ),
        )
    return letter_id, job.job_id


async def redrive(engine: AsyncEngine, letter_id: str, site: Site | None) -> operations.Redriven:
    async with unit_of_work(engine)() as uow:
        return await operations.redrive(uow, RedriveSelection(ids=[letter_id]), site)


async def unsent(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
        return int((await conn.execute(query)).scalar_one())


async def test_concurrent_redrives_claim_and_dispatch_once(engine: AsyncEngine) -> None:
    await Relay(engine, Bus(Recording())).publish_pending()  # type: ignore[arg-type]
    letter, _ = await dead_letter(engine)
    results = await asyncio.gather(*(redrive(engine, letter, None) for _ in range(10)))
    assert sum(r.claimed for r in results) == 1
    broker = Recording()
    await Relay(engine, Bus(broker)).publish_pending()  # type: ignore[arg-type]
    assert broker.dispatches() == ["private"]
    assert await unsent(engine) == 0


async def test_a_failed_publish_is_relayed_later_exactly_once(engine: AsyncEngine) -> None:
    await Relay(engine, Bus(Recording())).publish_pending()  # type: ignore[arg-type]
    letter, job_id = await dead_letter(engine)
    result = await redrive(engine, letter, Site.PUBLIC)
    assert result.claimed == 1  # the claim holds: nobody else redrives this letter
    assert await Relay(engine, Bus(Refusing())).publish_pending() == 0  # type: ignore[arg-type]
    assert await unsent(engine) == 2  # the JobRedriven batch and the dispatch
    again = await redrive(engine, letter, None)
    assert again.claimed == 0
    broker = Recording()
    assert await Relay(engine, Bus(broker)).publish_pending() == 2  # type: ignore[arg-type]
    assert broker.dispatches() == ["public"]
    assert await Relay(engine, Bus(broker)).publish_pending() == 0  # type: ignore[arg-type]
    assert broker.dispatches() == ["public"]
    view = await queries.get_job(engine, job_id)  # re-opened in the claim's transaction
    assert view is not None
    assert (view.status, view.site, view.attempts, view.max_attempts) == (
        "queued",
        "public",
        1,
        2,  # a job of 1 that used 1 reads "1 of 2" after one redrive (contract §5)
    )
