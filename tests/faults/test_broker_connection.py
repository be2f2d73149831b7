"""The broker connection lost under load: every connection of the test's vhost closed by
the broker (`close_all_connections` for one vhost, through the management API), and a
proxy of our own that cuts or stalls the services' connections past the heartbeat."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from urllib.parse import quote

import httpx
import pytest

from devtools import environment
from devtools.stack import Stack, free_port
from tests.faults.conftest import SIZE, running_stack
from tests.faults.ledger import check, rabbitmqctl_queues
from tests.faults.load import Load, run_load
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.connected, pytest.mark.faults]
HEARTBEAT = 2  # seconds, asked for by the services in their AMQP URL


@pytest.fixture(scope="module")
def proxy() -> Iterator[TcpProxy]:
    proxy = TcpProxy(5672, free_port()).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def stack(
    vhost: tuple[str, str],
    own_database: tuple[str, str],
    proxy: TcpProxy,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """The services reach the broker through `proxy`, with a short heartbeat."""
    logs = tmp_path_factory.mktemp("broker")
    via_proxy = (
        f"amqp://guest:guest@127.0.0.1:{proxy.listen_port}/{quote(vhost[0], safe='')}"
        f"?heartbeat={HEARTBEAT}"
    )
    with running_stack(via_proxy, own_database[1], logs) as stack:
        yield stack


def close_vhost_connections(vhost: str) -> int:
    """What `rabbitmqctl close_all_connections` does, for one vhost only. The management
    API lists a connection only once its statistics have been emitted (every few
    seconds), so the list is read until it names some."""
    with httpx.Client(base_url=environment.MANAGEMENT, auth=environment.ADMIN, timeout=30) as http:
        for _ in range(40):
            connections = http.get(f"/api/vhosts/{quote(vhost, safe='')}/connections").json()
            if connections:
                break
            time.sleep(0.25)
        for connection in connections:
            http.delete(
                f"/api/connections/{quote(connection['name'], safe='')}",
                headers={"X-Reason": "hybridq fault test"},
            )
        return len(connections)


async def _run(
    stack: Stack, vhost: tuple[str, str], name: str, fault: Callable[[], Awaitable[None]]
) -> None:
    load = Load()
    await run_load(load, vhost[1], lambda: stack.api, SIZE.jobs, SIZE.seconds, fault)
    await asyncio.to_thread(stack.wait_ready, 60)
    summary = await check(name, lambda: stack.api, load, rabbitmqctl_queues(vhost[0]))
    # a connection lost after a publish or dispatch but before its ack redelivers the
    # message: at-least-once, reported as `duplicated`, allowed here
    assert not summary.problems(duplicates_allowed=True), summary.report()


async def test_broker_closes_every_connection_of_the_vhost(
    stack: Stack, vhost: tuple[str, str], fault_round: int
) -> None:
    closed = []

    async def fault() -> None:
        for _ in range(2):
            await asyncio.sleep(SIZE.seconds / 3)
            closed.append(await asyncio.to_thread(close_vhost_connections, vhost[0]))

    await _run(stack, vhost, "close_all_connections (vhost)", fault)
    assert closed[0] > 0, "the fault did not close anything"


async def test_proxy_cuts_the_broker_connection(
    stack: Stack, vhost: tuple[str, str], proxy: TcpProxy, fault_round: int
) -> None:
    async def fault() -> None:
        await asyncio.sleep(SIZE.seconds / 3)
        proxy.cut()
        await asyncio.sleep(2 * HEARTBEAT)
        proxy.restore()

    await _run(stack, vhost, "proxy cuts broker connection", fault)


async def test_proxy_stalls_the_broker_connection_past_the_heartbeat(
    stack: Stack, vhost: tuple[str, str], proxy: TcpProxy, fault_round: int
) -> None:
    async def fault() -> None:
        await asyncio.sleep(SIZE.seconds / 3)
        proxy.stall()
        await asyncio.sleep(3 * HEARTBEAT)  # past two missed heartbeats: both ends give up
        proxy.restore()

    await _run(stack, vhost, "proxy stalls broker connection", fault)
