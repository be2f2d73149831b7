"""A 3-node cluster loses the node every service is connected to, in the middle of a load:
nothing lost, nothing stuck, every job terminal once (contract §1, §2: quorum queues)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools import environment, nodes
from devtools.stack import Stack
from tests.conftest import free_port
from tests.e2e.client import TERMINAL, events, job, publish_raw, wait_for

pytestmark = pytest.mark.connected
TERMINAL_EVENTS = {"JobSucceeded", "JobDeadLettered", "JobCancelled", "JobRejected"}


@pytest.fixture
def clustered_stack(
    cluster: list[nodes.Node], database_url: str, tmp_path: Path
) -> Iterator[tuple[Stack, str]]:
    vhost = f"hybridq_test_{uuid.uuid4().hex[:10]}"
    seed = cluster[0]
    environment.create_vhost(vhost, management=seed.management, ports=(seed.port,))
    urls = ",".join(n.amqp_url(vhost) for n in cluster)  # every service starts on node 1
    env = {
        "AMQP_URL": urls,
        "DATABASE_URL": database_url,
        "STATUS_HTTP_PORT": str(free_port()),
        "WORK_QUEUE_TYPE": "quorum",
        "RETRY_BASE_SECONDS": "0.2",
        "RETRY_MAX_SECONDS": "1",
    }
    stack = Stack(env, tmp_path / "logs")
    stack.start()
    try:
        stack.wait_ready(60)
        yield stack, vhost
    finally:
        codes = stack.stop()
        environment.delete_vhost(vhost, management=cluster[1].management)
        assert set(codes.values()) == {0}, f"{codes}; logs in {tmp_path / 'logs'}"


def _broker_state(management: str, vhost: str) -> dict[str, object]:
    """What the broker holds for the vhost: for a failure message (where a job is stuck)."""
    auth = ("guest", "guest")
    queues = httpx.get(f"{management}/api/queues/{vhost}", auth=auth).json()
    channels = httpx.get(f"{management}/api/channels", auth=auth).json()
    return {
        "queues": {
            q["name"]: (
                q.get("messages_ready"),
                q.get("messages_unacknowledged"),
                q.get("consumers"),
            )
            for q in queues
            if q.get("messages")
        },
        "channels": [
            (
                c.get("connection_details", {}).get("peer_port"),
                c.get("number"),
                c.get("messages_unconfirmed"),
                c.get("messages_unacknowledged"),
                c.get("consumer_count"),
            )
            for c in channels
            if c.get("vhost") == vhost
        ],
    }


def _connected_nodes(management: str, vhost: str) -> Counter[str]:
    got = httpx.get(f"{management}/api/vhosts/{vhost}/connections", auth=("guest", "guest"))
    got.raise_for_status()
    return Counter(c["node"] for c in got.json())


async def test_losing_the_connected_node_mid_load_loses_nothing(
    cluster: list[nodes.Node], clustered_stack: tuple[Stack, str]
) -> None:
    stack, vhost = clustered_stack
    victim, survivor = cluster[0], cluster[1]
    before = _connected_nodes(survivor.management, vhost)
    for _ in range(30):  # the management API lists connections with a delay
        if before:
            break
        await asyncio.sleep(0.5)
        before = _connected_nodes(survivor.management, vhost)
    assert set(before) == {victim.nodename}, before  # every service is on the node we stop

    jobs = [
        job("noop", target_cloud="private" if i % 2 else "public", max_attempts=5)
        for i in range(240)
    ] + [job("sleep", params={"seconds": 0.3}, max_attempts=5) for _ in range(10)]
    bodies = [json.dumps(j).encode() for j in jobs]
    survivor_url = survivor.amqp_url(vhost)
    await publish_raw(survivor_url, bodies[:120])  # confirmed by the cluster

    stopped = asyncio.create_task(asyncio.to_thread(victim.ctl, "stop_app"))
    await publish_raw(survivor_url, bodies[120:])  # while the node goes away
    await stopped
    try:
        ids = [j["job_id"] for j in jobs]
        try:
            views = await asyncio.gather(*(wait_for(stack.api, i, timeout=120) for i in ids))
        except AssertionError as exc:
            state = _broker_state(survivor.management, vhost)
            raise AssertionError(f"{exc}; the broker holds {state}") from exc
        after = _connected_nodes(survivor.management, vhost)
        assert after, "no service reconnected"
        assert victim.nodename not in after, after  # they moved to the other nodes

        statuses = Counter(v["status"] for v in views)
        assert statuses == Counter({"succeeded": len(jobs)}), statuses  # lost = 0
        for job_id in ids:  # one terminal state each
            ended = {e["type"] for e in await events(stack.api, job_id)} & TERMINAL_EVENTS
            assert ended == {"JobSucceeded"}, (job_id, ended)
        assert all(v["status"] in TERMINAL for v in views)
    finally:
        await asyncio.to_thread(victim.ctl, "start_app")
        await asyncio.to_thread(victim.ctl, "await_startup")
