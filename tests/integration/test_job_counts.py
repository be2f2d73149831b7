"""GET /stats reads counters (job_counts, migration 0009) that must equal a full count of
the jobs table after every commit: shuffled and duplicated events, redrives re-opening
dead-lettered jobs, concurrent writers, deletes by retention."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.adapters import queries
from services.status.adapters.tables import jobs
from shared.contracts import events as ev
from tests.integration.store_helpers import apply_events

pytestmark = pytest.mark.connected
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def story(job_id: uuid.UUID, kind: int) -> list[ev.Event]:
    """One of five job histories: succeeded, running, submitted only (no site yet),
    dead-lettered, dead-lettered then redriven and succeeded."""
    at = iter(T0 + timedelta(milliseconds=i) for i in range(100))
    site = random.choice(["public", "private"])
    events: list[ev.Event] = [
        ev.JobSubmittedEvent(job_id=job_id, job_type="noop", occurred_at=next(at))
    ]
    if kind == 2:
        return events
    events += [
        ev.JobRouted(
            job_id=job_id, site=site, rule="r", reason="x", priority=5, occurred_at=next(at)
        ),
        ev.JobStarted(job_id=job_id, site=site, attempt=1, worker="w", occurred_at=next(at)),
    ]
    if kind == 1:
        return events
    if kind in (3, 4):
        events.append(
            ev.JobDeadLettered(job_id=job_id, reason="failed", attempts=1, occurred_at=next(at))
        )
    if kind == 4:
        events += [
            ev.JobRedriven(
                job_id=job_id,
                site=site,
                dead_letter_id=f"dl-{job_id}",
                next_attempt=2,
                occurred_at=next(at),
            ),
            ev.JobStarted(job_id=job_id, site=site, attempt=2, worker="w", occurred_at=next(at)),
        ]
    if kind in (0, 4):
        events.append(
            ev.JobSucceeded(
                job_id=job_id,
                site=site,
                attempt=2 if kind == 4 else 1,
                duration_seconds=0.1,
                occurred_at=next(at),
            )
        )
    return events


async def scanned(engine: AsyncEngine) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """What /stats used to answer: a count of the whole table."""
    query = select(jobs.c.site, jobs.c.status, func.count()).group_by(jobs.c.site, jobs.c.status)
    by_status: dict[str, int] = {}
    by_site: dict[str, dict[str, int]] = {"public": {}, "private": {}}
    async with engine.connect() as conn:
        for site, status, n in await conn.execute(query):
            by_status[status] = by_status.get(status, 0) + n
            if site in by_site:
                by_site[site][status] = n
    return by_status, by_site


async def test_counters_equal_a_full_count_after_every_commit(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:  # this module's database: start from what is there
        await conn.execute(delete(jobs))
    rng = random.Random(9)
    events = [e for i in range(60) for e in story(uuid.uuid4(), i % 5)]
    events += rng.sample(events, 40)  # duplicates
    rng.shuffle(events)  # out of order: terminal first, redrive before the dead letter...
    batches, i = [], 0
    while i < len(events):
        size = rng.randint(1, 25)
        batches.append(events[i : i + size])
        i += size
    for batch in batches[: len(batches) // 2]:
        await apply_events(engine, batch)
        assert await queries.counts(engine) == await scanned(engine)
    # concurrent writers (separate transactions), as with several status replicas
    await asyncio.gather(*(apply_events(engine, b) for b in batches[len(batches) // 2 :]))
    by_status, by_site = await queries.counts(engine)
    assert (by_status, by_site) == await scanned(engine)
    assert by_status == {"succeeded": 24, "running": 12, "submitted": 12, "dead_lettered": 12}
    assert sum(by_site["public"].values()) + sum(by_site["private"].values()) == 48
    # retention deletes finished jobs: the counters follow
    async with engine.begin() as conn:
        await conn.execute(delete(jobs).where(jobs.c.status == "succeeded"))
    assert await queries.counts(engine) == await scanned(engine)
    assert "succeeded" not in (await queries.counts(engine))[0]
