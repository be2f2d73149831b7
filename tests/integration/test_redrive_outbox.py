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

from services.status import operations, queries, redrives
from services.status.ingest import DeadLetter
from services.status.store import record_dead_letter
from shared import topology
from shared.bus import Bus
from shared.contracts.jobs import PlacedJob, Site

pytestmark = pytest.mark.connected


class Recording:
    """A broker that confirms every publish and remembers it."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []

    async def publish(self, body: bytes, *, exchange: Any, routing_key: str, **_: Any) -> None:
        self.published.append((exchange.name, routing_key))

    def dispatches(self) -> list[str]:
        return [key for name, key in self.published if name == topology.DISPATCH.name]


class Refusing:
    async def publish(self, *args: Any, **kwargs: Any) -> None:
        raise ConnectionResetError("broker gone")


async def dead_letter(engine: AsyncEngine) -> dict[str, Any]:
    job = PlacedJob(job_id=uuid.uuid4(), job_type="fail", site=Site.PRIVATE, max_attempts=1)
    letter_id = str(uuid.uuid4())
    body = job.model_dump_json()
    await record_dead_letter(
        engine,
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
        ),
    )
    [letter] = await queries.dead_letters_to_redrive(
        engine, ids=[letter_id], reason=None, job_type=None, limit=1
    )
    return letter


async def pending(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(select(func.count()).select_from(redrives.redrive_outbox))
            ).scalar_one()
        )


async def test_concurrent_redrives_claim_and_dispatch_once(engine: AsyncEngine) -> None:
    letter = await dead_letter(engine)
    broker = Recording()
    bus = Bus(broker)  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(operations.redrive(engine, bus, [letter], None) for _ in range(10))
    )
    assert sum(claimed for claimed, _ in results) == 1
    assert broker.dispatches() == ["private"]
    assert await pending(engine) == 0


async def test_a_failed_publish_is_relayed_later_exactly_once(engine: AsyncEngine) -> None:
    letter = await dead_letter(engine)
    claimed, _ = await operations.redrive(engine, Bus(Refusing()), [letter], Site.PUBLIC)  # type: ignore[arg-type]
    assert claimed == 1  # the claim holds: nobody else redrives this letter
    assert await pending(engine) == 1
    again, _ = await operations.redrive(engine, Bus(Refusing()), [letter], None)  # type: ignore[arg-type]
    assert again == 0
    broker = Recording()
    assert await redrives.relay(engine, Bus(broker)) == 1  # type: ignore[arg-type]
    assert broker.dispatches() == ["public"]
    assert await redrives.relay(engine, Bus(broker)) == 0  # type: ignore[arg-type]
    assert broker.dispatches() == ["public"]
    view = await queries.get_job(engine, letter["job_id"])
    assert view is not None
    assert (view["status"], view["site"]) == ("queued", "public")
