"""The router's de-duplication on the real broker and database: replicas share intake,
a replica killed with `kill -9` loses nothing and lets no duplicate run again, and a
database that refuses connections holds intake instead of failing it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.router.ledger_store import PostgresLedgerStore, Seen
from tests.e2e.client import job, publish_raw
from tests.integration.router_harness import (
    Dispatched,
    eventually,
    log_lines,
    queue_messages,
    readyz,
    router_stack,
    set_allow_connections,
    wait_ready,
)

pytestmark = pytest.mark.connected


@pytest.fixture
async def dispatched(amqp_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[Dispatched]:
    probe = Dispatched()
    stack = router_stack(amqp_url, database_url, tmp_path, "router")
    stack.start("router")  # declares the topology the probe consumes from
    try:
        await wait_ready(stack, "router")
    finally:
        stack.stop()
    await probe.start(amqp_url)
    yield probe
    await probe.stop()


async def test_postgres_claims_are_atomic_across_replicas(database_url: str) -> None:
    a, b = PostgresLedgerStore(database_url), PostgresLedgerStore(database_url)
    keys = [f"job:{uuid.uuid4()}" for _ in range(200)]
    try:
        first, second = await asyncio.gather(a.claim(keys, "a", 30), b.claim(keys, "b", 30))
        winners = [k for k in keys if first[k] is Seen.NEW] + [
            k for k in keys if second[k] is Seen.NEW
        ]
        assert sorted(winners) == sorted(keys)  # every key won exactly once
        assert {first[k] for k in keys} | {second[k] for k in keys} == {Seen.NEW, Seen.BUSY}
        await a.finish([k for k in keys if first[k] is Seen.NEW], "a")
        await b.finish([k for k in keys if second[k] is Seen.NEW], "b")
        assert set((await a.claim(keys, "c", 30)).values()) == {Seen.DONE}
        short = f"job:{uuid.uuid4()}"
        assert (await a.claim([short], "dead", 0.05))[short] is Seen.NEW
        assert (await b.claim([short], "c", 30))[short] is Seen.BUSY
        await asyncio.sleep(0.2)
        assert (await b.claim([short], "c", 30))[short] is Seen.TAKEN_OVER
        assert await b.known(short)
        assert not await b.known(f"job:{uuid.uuid4()}")
    finally:
        await a.close()
        await b.close()


async def test_two_replicas_share_intake_and_a_kill9_loses_nothing_and_reruns_nothing(
    amqp_url: str, database_url: str, tmp_path: Path, dispatched: Dispatched
) -> None:
    stack = router_stack(amqp_url, database_url, tmp_path, "router", "router#2", "router#3")
    stack.start("router", "router#2")
    try:
        await wait_ready(stack, "router", "router#2")
        specs = [job("noop") for _ in range(400)]
        bodies = [json.dumps(s).encode() for s in specs]
        ids = [s["job_id"] for s in specs]
        await publish_raw(amqp_url, bodies[:200])
        await asyncio.sleep(0.2)  # under load: replica 2 holds deliveries
        stack.processes["router#2"].kill()  # kill -9
        stack.processes.pop("router#2").wait()
        stack.start("router#3")  # a fresh replacement with nothing of its own
        await publish_raw(amqp_url, bodies[200:])
        await dispatched.wait_for(ids, timeout=90)  # lost: 0
        routed = {name: len(log_lines(stack, name, "routed")) for name in ("router", "router#2")}
        assert all(n > 0 for n in routed.values()), f"a replica stood idle: {routed}"
        before = dict(dispatched.counts)

        def duplicates() -> int:
            return sum(
                len(log_lines(stack, name, "duplicate job_id: not run again"))
                for name in ("router", "router#2", "router#3")
            )

        seen_before = duplicates()
        await publish_raw(amqp_url, bodies)  # every job_id again
        # every copy is logged as a duplicate...
        await eventually(lambda: duplicates() >= seen_before + len(ids), 60, "all seen")
        await asyncio.sleep(1)
        assert dict(dispatched.counts) == before, "a duplicate job_id was dispatched again"
        engine = create_async_engine(database_url)
        async with engine.connect() as conn:
            done = await conn.scalar(
                text("SELECT count(*) FROM router_ledger WHERE state = 'done' AND key = ANY(:k)"),
                {"k": [f"job:{i}" for i in ids]},
            )
        await engine.dispose()
        assert done == len(ids)
    finally:
        stack.stop()


async def test_a_database_refusing_connections_holds_intake_until_it_is_back(
    amqp_url: str, database_url: str, tmp_path: Path, dispatched: Dispatched
) -> None:
    # The outage outlasts the hold, so deliveries are handed back (nack) and come again.
    stack = router_stack(
        amqp_url,
        database_url,
        tmp_path,
        "router",
        ROUTER_CLAIM_LEASE_SECONDS="1",
        ROUTER_DB_HOLD_SECONDS="2.5",
    )
    stack.start("router")
    try:
        await wait_ready(stack, "router")
        dead_letters_before = queue_messages(amqp_url, "jobs.dead-letter")
        set_allow_connections(database_url, False)
        try:
            specs = [job("noop") for _ in range(40)]
            await publish_raw(amqp_url, [json.dumps(s).encode() for s in specs])
            await asyncio.sleep(4)
            assert not [s for s in specs if s["job_id"] in dispatched.counts]
            await eventually(  # held in the queue (the management API samples every 5 s)
                lambda: queue_messages(amqp_url, "jobs.router.intake") == len(specs), 15, "held"
            )
            assert await asyncio.to_thread(readyz, stack, "router") == 503
            # held in-process (shared/holding.py), not handed back: no delivery budget spent
            assert log_lines(
                stack, "router", "broker trouble; holding the delivery and trying again"
            )
        finally:
            set_allow_connections(database_url, True)
        ids = [s["job_id"] for s in specs]
        await dispatched.wait_for(ids, timeout=60)
        assert all(dispatched.counts[i] == 1 for i in ids)
        assert queue_messages(amqp_url, "jobs.dead-letter") == dead_letters_before
        await wait_ready(stack, "router", timeout=10)
    finally:
        assert stack.stop() == {"router": 0}


async def test_an_unroutable_dispatch_is_handed_back_not_acked(
    amqp_url: str, database_url: str, tmp_path: Path, dispatched: Dispatched
) -> None:
    """With nothing bound for `private`, the router's dispatch is returned by the broker:
    the intake delivery is nacked (and, after the queue's delivery limit, dead-lettered
    by the broker), never acked as if the job had been placed."""
    stack = router_stack(amqp_url, database_url, tmp_path, "router")
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        private = await channel.get_queue("jobs.private")
        dead_letters = await channel.declare_queue(exclusive=True)
        await dead_letters.bind("jobs.dlx")
        stack.start("router")
        try:
            await wait_ready(stack, "router")  # it has declared (and bound) its topology
            await private.unbind("jobs.dispatch", "private")
            spec = job("noop", target_cloud="private")
            await publish_raw(amqp_url, [json.dumps(spec).encode()])
            message = None
            async with asyncio.timeout(30):
                while message is None:
                    message = await dead_letters.get(no_ack=True, fail=False)
                    await asyncio.sleep(0.2)
            assert json.loads(message.body)["job_id"] == spec["job_id"]
            death = message.headers["x-death"][0]  # type: ignore[index]
            assert (death["queue"], death["reason"]) == ("jobs.router.intake", "delivery_limit")  # type: ignore[index,call-overload]
        finally:
            await private.bind("jobs.dispatch", "private")
            stack.stop()


async def test_postgres_purge_deletes_only_rows_past_retention(database_url: str) -> None:
    store = PostgresLedgerStore(database_url)
    old = [f"job:{uuid.uuid4()}" for _ in range(5)]
    fresh = f"job:{uuid.uuid4()}"
    engine = create_async_engine(database_url)
    try:
        await store.claim([*old, fresh], "a", 30)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE router_ledger SET claimed_at = now() - interval '39 days' "
                    "WHERE key = ANY(:k)"
                ),
                {"k": old},
            )
        assert await store.purge(38.5, 3) == 3  # a small batch at a time
        assert await store.purge(38.5, 3) == 2
        assert await store.purge(38.5, 3) == 0
        assert await store.known(fresh)
    finally:
        await engine.dispose()
        await store.close()


async def test_workers_serve_the_probes_too(
    amqp_url: str, database_url: str, tmp_path: Path
) -> None:
    stack = router_stack(amqp_url, database_url, tmp_path, "private_worker", "public_worker")
    stack.start("private_worker", "public_worker")
    try:
        await wait_ready(stack, "private_worker", "public_worker")
        port = stack.per_service["public_worker"]["HEALTH_PORT"]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/healthz")).status_code == 200
    finally:
        assert stack.stop() == {"private_worker": 0, "public_worker": 0}


async def test_a_router_is_ready_only_once_it_consumes(
    amqp_url: str, database_url: str, tmp_path: Path
) -> None:
    """A client that waits for /readyz and then publishes must find the intake queue
    there and consumed (readiness after start-up, not at the first broker connection)."""
    stack = router_stack(amqp_url, database_url, tmp_path, "router")
    connection = await aio_pika.connect(amqp_url)  # ready before the router starts
    stack.start("router")
    try:
        # the first 200, asked as often as we can
        await eventually(lambda: readyz(stack, "router") == 200, 30, "ready", every=0.01)
        async with connection:
            channel = await connection.channel()
            intake = await channel.declare_queue("jobs.router.intake", passive=True)
            assert intake.declaration_result.consumer_count == 1
    finally:
        assert stack.stop() == {"router": 0}
