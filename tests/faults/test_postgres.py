"""Postgres refusing or dropping connections under load (issue 10): the status service
(and any service with a database) must hold and retry, never dead-letter or drop an event.

On the machine's server only the test's own database is touched (its connection limit and
ALLOW_CONNECTIONS, its own backends terminated); stopping and restarting a server, and
its "starting up" phase, happen on a private instance this module starts itself.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator

import asyncpg
import pytest

from devtools import environment
from devtools.stack import Stack
from services.status.migrate import upgrade
from tests.faults.conftest import SIZE, psql, running_stack
from tests.faults.ledger import check, rabbitmqctl_queues
from tests.faults.load import Load, run_load
from tests.faults.servers import PrivatePostgres

pytestmark = [pytest.mark.connected, pytest.mark.faults]
OUTAGE = 3.0  # seconds the database refuses


@pytest.fixture(scope="module")
def stack(
    vhost: tuple[str, str],
    own_database: tuple[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("postgres")
    with running_stack(vhost[1], own_database[1], logs) as stack:
        yield stack


def terminate_backends(database: str) -> None:
    psql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    )


def refusing(database: str, refuse: str, accept: str) -> Callable[[], Awaitable[None]]:
    """A third into the load: `ALTER DATABASE ... <refuse>` and its open connections
    terminated; `OUTAGE` seconds later, `<accept>`."""

    async def fault() -> None:
        await asyncio.sleep(SIZE.seconds / 3)
        await asyncio.to_thread(psql, f'ALTER DATABASE "{database}" {refuse}')
        await asyncio.to_thread(terminate_backends, database)
        await asyncio.sleep(OUTAGE)
        await asyncio.to_thread(psql, f'ALTER DATABASE "{database}" {accept}')

    return fault


async def _run(
    stack: Stack, vhost: tuple[str, str], name: str, fault: Callable[[], Awaitable[None]]
) -> None:
    load = Load()
    await run_load(load, vhost[1], lambda: stack.api, SIZE.jobs, SIZE.seconds, fault)
    summary = await check(name, lambda: stack.api, load, rabbitmqctl_queues(vhost[0]))
    assert not summary.problems(), summary.report()
    dead = [n for n, p in stack.processes.items() if p.poll() is not None]
    assert not dead, f"{dead} exited during the outage"


async def test_database_connection_limit_zero(
    stack: Stack, vhost: tuple[str, str], own_database: tuple[str, str], fault_round: int
) -> None:
    """`too many connections` (53300) on every new connection, the open ones terminated."""
    fault = refusing(own_database[0], "CONNECTION LIMIT 0", "CONNECTION LIMIT -1")
    await _run(stack, vhost, "postgres: CONNECTION LIMIT 0 + terminate", fault)


async def test_database_not_accepting_connections(
    stack: Stack, vhost: tuple[str, str], own_database: tuple[str, str], fault_round: int
) -> None:
    """`database is not currently accepting connections` (55000), the open ones terminated."""
    fault = refusing(own_database[0], "ALLOW_CONNECTIONS false", "ALLOW_CONNECTIONS true")
    await _run(stack, vhost, "postgres: ALLOW_CONNECTIONS false + terminate", fault)


@pytest.fixture(scope="module")
def private_vhost() -> Iterator[tuple[str, str]]:
    """A vhost of its own: two status services on one event queue would split the events."""
    name = f"hybridq_test_{uuid.uuid4().hex[:10]}"
    url = environment.create_vhost(name)
    yield name, url
    environment.delete_vhost(name)


@pytest.fixture(scope="module")
def private_stack(
    private_vhost: tuple[str, str],
    private_postgres: PrivatePostgres,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """The services on the private Postgres instance (and the machine's broker)."""
    url = private_postgres.create_database(f"hybridq_test_{uuid.uuid4().hex[:10]}")
    upgrade(url)
    logs = tmp_path_factory.mktemp("private-postgres")
    with running_stack(private_vhost[1], url, logs) as stack:
        yield stack


async def test_server_stops_and_restarts(
    private_stack: Stack,
    private_vhost: tuple[str, str],
    private_postgres: PrivatePostgres,
    fault_round: int,
) -> None:
    """A clean stop (connections closed by the server, then refused), then a restart."""

    async def fault() -> None:
        await asyncio.sleep(SIZE.seconds / 3)
        await asyncio.to_thread(private_postgres.pg_ctl, "stop -m fast")
        await asyncio.sleep(OUTAGE)
        await asyncio.to_thread(private_postgres.pg_ctl, "start -w")

    await _run(private_stack, private_vhost, "postgres: server stop + start", fault)


async def test_server_crashes_and_recovers(
    private_stack: Stack,
    private_vhost: tuple[str, str],
    private_postgres: PrivatePostgres,
    fault_round: int,
) -> None:
    """An immediate stop (a crash: no checkpoint), then a start that runs crash recovery."""

    async def fault() -> None:
        await asyncio.sleep(SIZE.seconds / 3)
        await asyncio.to_thread(private_postgres.pg_ctl, "stop -m immediate")
        await asyncio.sleep(OUTAGE / 2)
        await asyncio.to_thread(private_postgres.pg_ctl, "start -w")

    await _run(private_stack, private_vhost, "postgres: crash + recovery", fault)


async def test_server_starting_up(
    private_stack: Stack,
    private_vhost: tuple[str, str],
    private_postgres: PrivatePostgres,
    fault_round: int,
) -> None:
    """For OUTAGE seconds every connection is refused with SQLSTATE 57P03 (`the database
    system is starting up` / `not yet accepting connections`)."""
    told: list[str] = []

    async def fault() -> None:
        await asyncio.sleep(SIZE.seconds / 3)
        await asyncio.to_thread(private_postgres.starting_up, True)
        try:
            await asyncio.sleep(1)
            try:
                await (await asyncpg.connect(private_postgres.admin_dsn, timeout=5)).close()
                told.append("accepted")
            except asyncpg.PostgresError as exc:
                told.append(f"{exc.sqlstate}: {exc}")
            await asyncio.sleep(OUTAGE)
        finally:
            await asyncio.to_thread(private_postgres.starting_up, False)

    await _run(private_stack, private_vhost, "postgres: starting up (57P03)", fault)
    assert told[0].startswith("57P03"), f"the fault was not 57P03: {told}"
