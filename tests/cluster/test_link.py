"""The hybrid link (contract §7), driven by `hybridq link` alone, between two brokers of the
test's own: the private one (router, status, private worker) and the public one (public
worker only). Jobs of both sites run; a cut and a restore lose nothing; a job cancelled while
the link is down never starts; `link status` reports the cut."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import aio_pika
import httpx
import pytest

from devtools import environment, nodes
from devtools.stack import Stack
from shared.topology import LINK_SYNC_KEY
from tests.brokers import broker_under_test
from tests.e2e.client import events, job, submit, wait_for

pytestmark = pytest.mark.connected
VHOST = "hybridq"
TERMINAL_EVENTS = {"JobSucceeded", "JobDeadLettered", "JobCancelled", "JobRejected"}


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[nodes.Node, nodes.Node]]:
    base = nodes.scratch_dir()
    private, public = nodes.node("hybridq-lp", 5721, base), nodes.node("hybridq-lq", 5722, base)
    for n in (private, public):
        nodes.start(n)
        environment.create_vhost(VHOST, management=n.management, ports=(n.port,))
    try:
        yield private, public
    finally:
        for n in (private, public):
            nodes.stop(n)
        shutil.rmtree(base, ignore_errors=True)


def _flags(private: nodes.Node, public: nodes.Node) -> list[str]:
    return [
        "--private",
        private.amqp_url(VHOST),
        "--public",
        public.amqp_url(VHOST),
        "--private-admin",
        f"http://guest:guest@127.0.0.1:{private.management_port}",
        "--public-admin",
        f"http://guest:guest@127.0.0.1:{public.management_port}",
    ]


def link(action: str, brokers: tuple[nodes.Node, nodes.Node]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hybridq_cli",
            "link",
            action,
            *_flags(*brokers),
            *(["--queue-type", broker_under_test().queue_type] if action == "setup" else []),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _shovel_parameters(public: nodes.Node) -> list[dict[str, Any]]:
    got = httpx.get(f"{public.management}/api/parameters/shovel/{VHOST}", auth=("guest",) * 2)
    got.raise_for_status()
    return sorted(got.json(), key=lambda p: p["name"])


async def _depth(n: nodes.Node, queue: str) -> int:
    """Ready messages now (a passive declare; the management API's figures are sampled)."""
    connection = await aio_pika.connect(n.amqp_url(VHOST))
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


@pytest.fixture(scope="module")
def linked_stack(
    brokers: tuple[nodes.Node, nodes.Node],
    stack_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    private, public = brokers
    first = link("setup", brokers)  # fresh, empty vhosts: before any service started
    assert first.returncode == 0, first.stderr
    defined = _shovel_parameters(public)
    again = link("setup", brokers)
    assert again.returncode == 0, again.stderr
    assert _shovel_parameters(public) == defined  # running it twice changes nothing
    stack = Stack(
        {**stack_env, "AMQP_URL": private.amqp_url(VHOST)},
        tmp_path_factory.mktemp("link-logs"),
        per_service={"public_worker": {"AMQP_URL": public.amqp_url(VHOST)}},
    )
    stack.start()
    try:
        stack.wait_ready(60)
        yield stack
    finally:
        codes = stack.stop()
        assert set(codes.values()) == {0}, codes


async def _crowd_the_cancellations_link(n: nodes.Node, count: int) -> None:
    """Put `count` sync markers nobody waits for into the private side's cancellations FIFO,
    so that after a restore the link delivers the jobs well before a cancellation queued
    behind them: the race a public worker's barrier has to win."""
    connection = await aio_pika.connect(n.amqp_url(VHOST))
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange("jobs.events")
        body = json.dumps({"marker": "filler"}).encode()
        await asyncio.gather(
            *(
                exchange.publish(aio_pika.Message(body), routing_key=LINK_SYNC_KEY)
                for _ in range(count)
            )
        )


async def _ran_on(stack: Stack, job_id: str) -> set[str]:
    return {e["site"] for e in await events(stack.api, job_id) if e["type"] == "JobStarted"}


async def test_jobs_of_both_sites_run_through_the_link(
    brokers: tuple[nodes.Node, nodes.Node], linked_stack: Stack
) -> None:
    url = linked_stack.env["AMQP_URL"]
    public_ids = await submit(url, *(job("noop", target_cloud="public") for _ in range(5)))
    private_ids = await submit(url, *(job("noop", target_cloud="private") for _ in range(5)))
    for job_id in public_ids + private_ids:
        assert (await wait_for(linked_stack.api, job_id))["status"] == "succeeded"
    assert all([await _ran_on(linked_stack, i) == {"public"} for i in public_ids])
    assert all([await _ran_on(linked_stack, i) == {"private"} for i in private_ids])
    report = link("status", brokers)
    assert report.returncode == 0, report.stdout + report.stderr
    assert report.stdout.count("running") == 6


async def test_a_cut_and_a_restore_lose_nothing_and_a_cancel_holds(
    brokers: tuple[nodes.Node, nodes.Node], linked_stack: Stack
) -> None:
    private, public = brokers
    url, api = linked_stack.env["AMQP_URL"], linked_stack.api
    await asyncio.to_thread(public.ctl, "stop_app")  # the public site goes away
    try:
        report = link("status", brokers)
        assert report.returncode != 0
        assert "not running" in report.stderr
        waiting = await submit(url, *(job("noop", target_cloud="public") for _ in range(20)))
        (doomed,) = await submit(url, job("noop", target_cloud="public"))
        local = await submit(url, *(job("noop", target_cloud="private") for _ in range(5)))
        await wait_for(api, doomed, {"queued"})
        await _crowd_the_cancellations_link(private, 3000)
        async with httpx.AsyncClient(base_url=api) as http:
            assert (await http.post(f"/jobs/{doomed}/cancel")).status_code == 202
        for job_id in local:  # the private site goes on meanwhile
            assert (await wait_for(api, job_id))["status"] == "succeeded"
        assert await _depth(private, "jobs.public") == 21  # public jobs wait on the private side
        assert (await wait_for(api, waiting[0], {"queued"}))["status"] == "queued"
    finally:
        await asyncio.to_thread(public.ctl, "start_app")
        await asyncio.to_thread(public.ctl, "await_startup")
    for job_id in waiting:  # the backlog drains once the link is back
        assert (await wait_for(api, job_id, timeout=90))["status"] == "succeeded"
    cancelled = await wait_for(api, doomed)
    assert cancelled["status"] == "cancelled"
    await asyncio.sleep(2)  # anything the public worker would still do with it has happened
    history = [e["type"] for e in await events(api, doomed)]
    assert "JobStarted" not in history, history
    for job_id in waiting:
        ended = {e["type"] for e in await events(api, job_id)} & TERMINAL_EVENTS
        assert ended == {"JobSucceeded"}
    for _ in range(60):  # the link reports itself healthy again
        if link("status", brokers).returncode == 0:
            break
        await asyncio.sleep(1)
    else:
        raise AssertionError("the link did not come back: " + link("status", brokers).stdout)
    assert await _depth(private, "jobs.public") == 0


def test_remove_deletes_the_shovels(brokers: tuple[nodes.Node, nodes.Node]) -> None:
    removed = link("remove", brokers)
    assert removed.returncode == 0, removed.stderr
    assert _shovel_parameters(brokers[1]) == []
    assert link("status", brokers).returncode != 0
