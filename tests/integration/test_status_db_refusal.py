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
from aio_pika import IncomingMessage
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.adapters import queries
from services.status.adapters.tables import jobs
from services.status.domain.ids import compensation_job_id
from services.status.service_layer import groups
from shared import topology
from shared.contracts import events as ev
from shared.contracts.jobs import JobSubmitted
from tests.integration.ingest_harness import (
    dead_letter_count,
    eventually,
    psql,
    settled,
    status_consumers,
)
from tests.integration.test_status_sagas import COMPENSATE, compensation_queued

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
    nack = IncomingMessage.nack  # under every consumer (aio-pika's, or FastStream's)

    async def counting_nack(self: IncomingMessage, *args: object, **kwargs: object) -> None:
        nonlocal handed_back
        handed_back += 1
        await nack(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(IncomingMessage, "nack", counting_nack)
    async with status_consumers(amqp_url, role_url, hold_seconds=0.5) as status:
        ids = [uuid.uuid4() for _ in range(20)]
        member, failing, lettered = uuid.uuid4(), uuid.uuid4(), [uuid.uuid4() for _ in range(3)]
        group_id = uuid.uuid4()
        members = [(JobSubmitted(job_id=member, job_type="noop"), COMPENSATE)]
        members.append((JobSubmitted(job_id=failing, job_type="noop"), None))
        async with status.units() as uow:
            await groups.create(uow, group_id, members)
        letters_before = await dead_letter_count(status.engine)
        refuse(database, how)
        try:  # all three consumers get work while the database refuses
            for job_id in ids:
                await status.bus.event(ev.JobSubmittedEvent(job_id=job_id, job_type="noop"))
            await status.bus.event(
                ev.JobSucceeded(job_id=member, site="private", attempt=1, duration_seconds=1)  # type: ignore[arg-type]
            )
            await status.bus.event(ev.JobDeadLettered(job_id=failing, reason="x", attempts=3))
            for job_id in lettered:
                body = JobSubmitted(job_id=job_id, job_type="noop").model_dump_json().encode()
                await status.bus.dead_letter(
                    body, reason="max_attempts", source_queue="jobs.private", job_id=str(job_id)
                )
            await asyncio.sleep(4)  # several holds pass: held, handed back, redelivered
        finally:
            accept(database, how)

        everything = [*ids, member, failing, *lettered]

        async def all_projected() -> bool:
            return await projected(status.engine, everything) == len(everything)

        await eventually(all_projected, 20, "every event projected")
        assert handed_back >= len(ids)  # the hand-back path really ran
        compensation = await eventually(
            lambda: compensation_queued(status.engine, member), 20, "the group compensates"
        )
        assert compensation == compensation_job_id(group_id, member)
        # only the dead letters sent on purpose: nothing was dead-lettered for the outage
        assert await dead_letter_count(status.engine) == letters_before + len(lettered)
        for job_id in lettered:
            view = await queries.get_job(status.engine, job_id)
            assert view is not None
            assert view.status == "dead_lettered"
        await eventually(
            lambda: settled(
                amqp_url,
                topology.STATUS_EVENTS.name,
                topology.STATUS_DEAD_LETTERS.name,
            ),
            30,
            "status queues empty, nothing unacked",
        )
