"""A broker restart under the running services (docs/design.md, "Acknowledgement and errors"):
no unhandled exception, the client libraries' lines reduced to a few, and one
"reconnected" line for every connection that said it was lost, in every process. On a
throw-away RabbitMQ node (tests/private_node.py): the machine's node is not restarted."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.stack import Stack
from tests import private_node
from tests.e2e.client import job, submit, wait_for

pytestmark = pytest.mark.connected
LIBRARIES = ("aiormq", "aio_pika")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[private_node.PrivateNode]:
    node = private_node.start(tmp_path_factory.mktemp("rabbit"), "")
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def amqp_url(node: private_node.PrivateNode) -> str:
    return node.amqp_url


def lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a service's log; one that is not JSON (a raw traceback) as `raw`."""
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"raw": line, "level": "raw", "logger": "", "msg": line})
    return out


def labels(logged: list[dict[str, Any]], msg: str) -> list[str]:
    return [str(r["connection"]) for r in logged if r.get("msg") == msg]


async def test_a_broker_restart_leaves_one_reconnected_line_per_connection(
    stack: Stack, node: private_node.PrivateNode
) -> None:
    (before,) = await submit(stack.env["AMQP_URL"], job("noop"))
    assert (await wait_for(stack.api, before))["status"] == "succeeded"
    await asyncio.to_thread(node.restart)
    deadline = time.monotonic() + 60
    while True:  # every connection that was lost says it is back
        logs = {name: lines(stack.log_path(name)) for name in stack.processes}
        pending = {
            name: set(labels(logged, "broker connection lost; reconnecting"))
            - set(labels(logged, "reconnected to the broker"))
            for name, logged in logs.items()
        }
        if not any(pending.values()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    (after,) = await submit(stack.env["AMQP_URL"], job("noop", target_cloud="public"))
    assert (await wait_for(stack.api, after, timeout=60))["status"] == "succeeded"
    logs = {name: lines(stack.log_path(name)) for name in stack.processes}
    for name, logged in logs.items():
        lost = labels(logged, "broker connection lost; reconnecting")
        back = labels(logged, "reconnected to the broker")
        assert lost, f"{name}: no connection said it was lost"
        assert sorted(back) == sorted(lost) == sorted(set(lost)), (name, lost, back)
        raw = [r["msg"] for r in logged if r["level"] == "raw"]
        unhandled = [r["msg"] for r in logged if r["logger"] == "asyncio"]
        assert not raw, (name, raw)
        assert not unhandled, (name, unhandled)
        tracebacks = [r["msg"] for r in logged if "exc" in r]
        assert not tracebacks, (name, tracebacks)
        library = [r["msg"] for r in logged if r["logger"].startswith(LIBRARIES)]
        assert len(library) <= len(set(lost)), (name, library)
