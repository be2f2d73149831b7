"""A 3-node cluster loses the node every service is connected to, in the middle of a load:
nothing lost, nothing stuck, every job terminal once (contract §1, §2: quorum queues)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from devtools import nodes
from devtools.stack import Stack
from tests.cluster.management import broker_state, connected_nodes
from tests.e2e.client import TERMINAL, events, job, publish_raw, wait_for

pytestmark = pytest.mark.connected
TERMINAL_EVENTS = {"JobSucceeded", "JobDeadLettered", "JobCancelled", "JobRejected"}


async def test_losing_the_connected_node_mid_load_loses_nothing(
    cluster: list[nodes.Node], clustered_stack: tuple[Stack, str]
) -> None:
    stack, vhost = clustered_stack
    victim, survivor = cluster[0], cluster[1]
    before = connected_nodes(survivor.management, vhost)
    for _ in range(30):  # the management API lists connections with a delay
        if before:
            break
        await asyncio.sleep(0.5)
        before = connected_nodes(survivor.management, vhost)
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
            state = broker_state(survivor.management, vhost)
            raise AssertionError(f"{exc}; the broker holds {state}") from exc
        after = connected_nodes(survivor.management, vhost)
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
