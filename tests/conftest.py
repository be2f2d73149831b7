"""Fixtures: a throw-away vhost and database per test module, and the real processes."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from devtools import environment
from devtools.stack import Stack
from services.status.migrate import upgrade
from tests.brokers import BrokerUnderTest, broker_under_test

LONG_TIMEOUTS = {"faults": 1800, "cluster": 1800}
"""Seconds per test in the folders whose tests run load, restart brokers or kill nodes
(the default, pyproject's `timeout`, is for everything else)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = item.path.parent.name
        if folder in LONG_TIMEOUTS and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(LONG_TIMEOUTS[folder]))


def _name() -> str:
    return f"hybridq_test_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def broker() -> BrokerUnderTest:
    """The machine's RabbitMQ node, or the local cluster `make test-cluster` started."""
    return broker_under_test()


@pytest.fixture(scope="module")
def amqp_url(broker: BrokerUnderTest) -> Iterator[str]:
    """A throw-away vhost; on a cluster, one URL per node (comma-separated)."""
    name = _name()
    url = environment.create_vhost(name, management=broker.management, ports=broker.ports)
    yield url
    environment.delete_vhost(name, management=broker.management)


@pytest.fixture(scope="session")
def management(broker: BrokerUnderTest) -> str:
    """Base URL of the management API of the broker the tests use."""
    return broker.management


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    name = _name()
    url = environment.create_database(name)
    upgrade(url)
    yield url
    environment.drop_database(name)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def stack_env(
    amqp_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    return {
        "AMQP_URL": amqp_url,
        "DATABASE_URL": database_url,
        "STATUS_HTTP_PORT": str(free_port()),
        "RETRY_BASE_SECONDS": "0.2",
        "RETRY_MAX_SECONDS": "2",
        "LOG_LEVEL": "INFO",
        "WORK_QUEUE_TYPE": broker_under_test().queue_type,
    }


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The four real processes (`python -m services.X`) on this module's vhost and db."""
    logs: Path = tmp_path_factory.mktemp("logs")
    stack = Stack(stack_env, logs)
    stack.start()
    try:
        stack.wait_ready()
        yield stack
    finally:
        codes = stack.stop()
        bad = {n: c for n, c in codes.items() if c != 0}
        assert not bad, f"services did not exit 0 on SIGTERM: {bad}; logs in {logs}"
