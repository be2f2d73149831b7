"""Alembic stairway: every revision upgrades, downgrades and upgrades again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.script import ScriptDirectory

from devtools import environment
from services.status.migrate import alembic_config, downgrade, upgrade

pytestmark = pytest.mark.connected


@pytest.fixture
def empty_database() -> Iterator[str]:
    name = "hybridq_test_stairway"
    environment.drop_database(name)
    url = environment.create_database(name)
    yield url
    environment.drop_database(name)


def test_stairway(empty_database: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(empty_database))
    revisions = list(reversed(list(script.walk_revisions())))
    assert revisions
    for revision in revisions:
        upgrade(empty_database, revision.revision)
        downgrade(empty_database, revision.down_revision or "base")
        upgrade(empty_database, revision.revision)


def test_0011_carries_every_outbox_row_into_the_one(empty_database: str) -> None:
    """Issue 22: one outbox table. Rows of revision 0010's three outboxes (unsent group
    submissions, redrive_outbox, unpublished schedule firings) are all in `outbox` after
    0011, each with where it goes, in order; published firings stay records only."""
    import asyncio
    import json
    import uuid

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from shared.contracts.jobs import PlacedJob, Site

    upgrade(empty_database, "0010")
    group_job, fired, old_fire = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    placed = PlacedJob(job_id=uuid.uuid4(), job_type="noop", site=Site.PUBLIC, priority=7)
    redriven = {"type": "JobRedriven", "job_id": str(placed.job_id), "site": "public"}
    schedule_id = uuid.uuid4()

    async def seed() -> None:
        engine = create_async_engine(empty_database)
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO outbox (message_id, body) VALUES (:m, :b)"),
                {"m": str(group_job), "b": json.dumps({"job_id": str(group_job)}).encode()},
            )
            await conn.execute(
                text(
                    "INSERT INTO redrive_outbox (dead_letter_id, job_id, event, job) "
                    "VALUES ('dl-1', :j, CAST(:e AS jsonb), CAST(:p AS jsonb))"
                ),
                {"j": placed.job_id, "e": json.dumps(redriven), "p": placed.model_dump_json()},
            )
            for job_id, published in ((fired, None), (old_fire, "now()")):
                await conn.execute(
                    text(
                        "INSERT INTO schedule_firings (job_id, schedule_id, fire_time, "
                        f"claimed_at, body, published_at) VALUES (:j, :s, now(), now(), "
                        f"CAST(:b AS jsonb), {published or 'NULL'})"
                    ),
                    {"j": job_id, "s": schedule_id, "b": json.dumps({"job_id": str(job_id)})},
                )
        await engine.dispose()

    async def carried() -> list[tuple[str, str, str | None, str, int | None]]:
        engine = create_async_engine(empty_database)
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT exchange, routing_key, origin, convert_from(body, 'UTF8'), priority "
                    "FROM outbox WHERE sent_at IS NULL ORDER BY seq"
                )
            )
            found = [tuple(r) for r in rows]
        await engine.dispose()
        return found  # type: ignore[return-value]

    asyncio.run(seed())
    upgrade(empty_database, "0011")
    rows = asyncio.run(carried())
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("jobs.intake", "job.submitted", None),  # the group member, as it was
        ("jobs.events", "events.status", "redrive:dl-1"),  # the JobRedriven, as a batch
        ("jobs.dispatch", "public", "redrive:dl-1"),  # then its dispatch
        ("jobs.intake", "job.submitted", f"schedule:{schedule_id}"),  # the unpublished firing
    ]
    batch = json.loads(rows[1][3])
    assert batch == {"schema_version": 2, "events": [redriven]}
    assert PlacedJob.model_validate_json(rows[2][3]) == placed
    assert rows[2][4] == 7
    assert json.loads(rows[3][3])["job_id"] == str(fired)
