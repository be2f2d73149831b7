"""Postgres refusing connections is transient: events are held, handed back, never lost.

The hold is short (0.5 s), so while the database refuses, every delivery goes the whole
way: held, then nacked with requeue, then redelivered — acking there instead loses them.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from faststream.rabbit.message import RabbitMessage
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.tables import jobs
from shared import topology
from shared.contracts import events as ev
from tests.integration.ingest_harness import (
    dead_letter_count,
    eventually,
    psql,
    settled,
    status_consumers,
)

pytestmark = pytest.mark.connected


@pytest.fixture(scope="module")
def role_url(database_url: str) -> Iterator[str]:
    """A login that is not a superuser (a connection limit does not bind superusers)."""
    role = f"hybridq_test_role_{uuid.uuid4().hex[:8]}"
    database = urlsplit(database_url).path.lstrip("/")
    psql(f"CREATE ROLE {role} LOGIN")
    psql(f'GRANT CONNECT ON DATABASE "{database}" TO {role}')
    for grant in (
        f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}",
        f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}",
    ):
        psql_in(database, grant)
    yield database_url.replace("postgres@", f"{role}@", 1)
    psql_in(database, f"REASSIGN OWNED BY {role} TO postgres; DROP OWNED BY {role}")
    psql(f"DROP ROLE IF EXISTS {role}")


def psql_in(database: str, sql: str) -> None:
    subprocess.run(
        [
            "psql",
            f"postgresql://postgres@127.0.0.1:5432/{database}",
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            sql,
        ],
        check=True,
        capture_output=True,
    )


REFUSALS = {
    "connection_limit_0": ("CONNECTION LIMIT 0", "CONNECTION LIMIT -1"),
    "allow_connections_false": ("ALLOW_CONNECTIONS false", "ALLOW_CONNECTIONS true"),
}


def refuse(database: str, how: str) -> None:
    psql(f'ALTER DATABASE "{database}" WITH {REFUSALS[how][0]}')
    psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    )


def accept(database: str, how: str) -> None:
    psql(f'ALTER DATABASE "{database}" WITH {REFUSALS[how][1]}')


async def projected(engine: AsyncEngine, ids: list[uuid.UUID]) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(jobs).where(jobs.c.job_id.in_(ids))
        return int(await conn.scalar(query) or 0)


@pytest.mark.parametrize("how", sorted(REFUSALS))
async def test_events_arriving_while_the_database_refuses_are_all_projected_after(
    amqp_url: str, database_url: str, role_url: str, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = urlsplit(database_url).path.lstrip("/")
    handed_back = 0
    nack = RabbitMessage.nack

    async def counting_nack(self: RabbitMessage, *args: object, **kwargs: object) -> None:
        nonlocal handed_back
        handed_back += 1
        await nack(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(RabbitMessage, "nack", counting_nack)
    async with status_consumers(amqp_url, role_url, hold_seconds=0.5) as status:
        ids = [uuid.uuid4() for _ in range(20)]
        refuse(database, how)
        try:
            for job_id in ids:
                await status.bus.event(ev.JobSubmittedEvent(job_id=job_id, job_type="noop"))
            await asyncio.sleep(4)  # several holds pass: held, handed back, redelivered
        finally:
            accept(database, how)

        async def all_projected() -> bool:
            return await projected(status.engine, ids) == len(ids)

        await eventually(all_projected, 20, "every event projected")
        assert handed_back >= len(ids)  # the hand-back path really ran
        assert await projected(status.engine, ids) == 20
        assert await dead_letter_count(status.engine) == 0
        await eventually(
            lambda: settled(amqp_url, topology.STATUS_EVENTS.name, topology.DEAD_LETTER_QUEUE.name),
            30,
            "queues empty and nothing dead-lettered",
        )
