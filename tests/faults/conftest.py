"""Fixtures of the fault suite: fresh backends, the real processes, the run's size.

`make test` runs the short form (a few dozen jobs per scenario); `make test-faults` the
long form, sized by FAULTS_JOBS / FAULTS_SECONDS / FAULTS_ROUNDS.
"""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings

from devtools import environment
from devtools.stack import Stack, free_port
from services.status.migrate import upgrade
from tests.faults.servers import PrivatePostgres, PrivateRabbitMQ


class FaultSettings(BaseSettings):
    """How big a run is: the short form by default, the long one from the environment."""

    jobs: int = Field(default=24, ge=2, alias="FAULTS_JOBS")
    seconds: float = Field(default=3.0, gt=0, alias="FAULTS_SECONDS")
    rounds: int = Field(default=1, ge=1, alias="FAULTS_ROUNDS")


SIZE = FaultSettings()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fault_round" in metafunc.fixturenames:
        metafunc.parametrize("fault_round", range(SIZE.rounds))


def _name() -> str:
    return f"hybridq_test_{uuid.uuid4().hex[:10]}"


def psql(sql: str, dsn: str = environment.PG_ADMIN_DSN) -> str:
    done = subprocess.run(
        ["psql", dsn, "-v", "ON_ERROR_STOP=1", "-tAqc", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def vhost() -> Iterator[tuple[str, str]]:
    """(name, AMQP URL) of a fresh vhost on the machine's node."""
    name = _name()
    url = environment.create_vhost(name)
    yield name, url
    environment.delete_vhost(name)


@pytest.fixture(scope="module")
def own_database() -> Iterator[tuple[str, str]]:
    """(name, URL) of a fresh database on the machine's server, owned by a role of its own
    that is not a superuser: `CONNECTION LIMIT` does not apply to superusers."""
    name = _name()
    psql(f"CREATE ROLE {name} LOGIN")
    psql(f'CREATE DATABASE "{name}" OWNER {name}')
    url = f"postgresql+asyncpg://{name}@127.0.0.1:5432/{name}"
    upgrade(url)
    yield name, url
    psql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true CONNECTION LIMIT -1')
    environment.drop_database(name)
    psql(f"DROP ROLE IF EXISTS {name}")


def base_env(amqp_url: str, database_url: str) -> dict[str, str]:
    return {
        "AMQP_URL": amqp_url,
        "DATABASE_URL": database_url,
        "STATUS_HTTP_PORT": str(free_port()),
        "RETRY_BASE_SECONDS": "0.2",
        "RETRY_MAX_SECONDS": "1",
        "DRAIN_SECONDS": "5",
        "LOG_LEVEL": "INFO",
    }


@contextmanager
def running_stack(
    amqp_url: str,
    database_url: str,
    logs: Path,
    replicas: int | None = None,
    ready_seconds: float = 60,
) -> Iterator[Stack]:
    """Every service (once, or `replicas` replicas of each: `router#1`...) on this broker
    and database, ready; at the end SIGTERM to everything (a replica killed and not
    replaced is already gone)."""
    stack = Stack(base_env(amqp_url, database_url), logs)
    stack.start(replicas=replicas)
    try:
        stack.wait_ready(ready_seconds)
        yield stack
    finally:
        stack.stop(timeout=15)


@pytest.fixture(scope="module")
def private_rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRabbitMQ]:
    node = PrivateRabbitMQ(
        Path(tempfile.mkdtemp(prefix="hybridq-faults-rabbitmq-")),
        keep_logs=tmp_path_factory.mktemp("rabbitmq-node-log"),
    )
    try:
        yield node.start()
    finally:
        node.stop()


@pytest.fixture(scope="module")
def private_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(
        Path(tempfile.mkdtemp(prefix="hybridq-faults-postgres-")),
        keep_logs=tmp_path_factory.mktemp("postgres-server-log"),
    )
    try:
        yield server.start()
    finally:
        server.stop()
