"""The router's de-duplication ledger: claim logic on a fake store (no Postgres)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.router.batcher import Batcher
from services.router.dedup import (
    LIFETIME_MARGIN_DAYS,
    ClaimHeld,
    Ledger,
    LedgerAway,
    dispatch_key,
    intake_key,
)
from services.router.ledger_store import Seen
from tests.unit.fake_ledger import FakeLedgerStore

LEASE = 10.0


def replica(store: FakeLedgerStore, name: str, hold: float = 1.0) -> Ledger:
    ledger = Ledger(store, lease_seconds=LEASE, hold_seconds=hold, retention_days=30, owner=name)
    ledger.hold = hold  # the tests want short holds; production keeps at least 2 leases
    return ledger


def key() -> str:
    return intake_key(uuid.uuid4())


async def test_only_one_of_two_racing_copies_gets_the_claim() -> None:
    store = FakeLedgerStore()
    a, b = replica(store, "a"), replica(store, "b")
    k = key()
    results = await asyncio.gather(
        a.acquire(k, redelivered=False),
        b.acquire(k, redelivered=False),
        a.acquire(k, redelivered=False),
    )
    assert sorted(results) == [False, False, True]


async def test_a_burst_of_claims_costs_one_round_trip() -> None:
    store = FakeLedgerStore()
    ledger = replica(store, "a")
    keys = [key() for _ in range(100)]
    results = await asyncio.gather(*(ledger.acquire(k, redelivered=False) for k in keys))
    assert all(results)
    assert store.calls == [("claim", 100)]
    await asyncio.gather(*(ledger.finish(k) for k in keys))
    assert store.calls[1:] == [("finish", 100)]


async def test_a_done_job_is_a_duplicate_on_every_replica_even_redelivered() -> None:
    store = FakeLedgerStore()
    a, b = replica(store, "a"), replica(store, "b")
    k = key()
    assert await a.acquire(k, redelivered=False)
    await a.finish(k)
    store.now += 10 * LEASE  # long after any lease
    assert not await b.acquire(k, redelivered=True)
    assert not await replica(store, "fresh").acquire(k, redelivered=False)


async def test_a_distinct_copy_arriving_while_the_original_is_in_flight_is_dropped() -> None:
    store = FakeLedgerStore()
    a, b = replica(store, "a"), replica(store, "b")
    k = key()
    assert await a.acquire(k, redelivered=False)
    assert not await b.acquire(k, redelivered=False)


async def test_a_redelivered_duplicate_waits_for_the_live_holder_and_is_then_dropped() -> None:
    """Original in flight on A; B got a duplicate copy and died; C gets B's copy back."""
    store = FakeLedgerStore()
    a, c = replica(store, "a"), replica(store, "c", hold=5.0)
    k = key()
    assert await a.acquire(k, redelivered=False)
    waiting = asyncio.create_task(c.acquire(k, redelivered=True))
    await asyncio.sleep(0.6)
    assert not waiting.done()  # held: the claim is live, it must not run alongside A
    await a.finish(k)
    assert await asyncio.wait_for(waiting, 2) is False


async def test_a_redelivered_copy_takes_over_once_the_dead_holders_lease_runs_out() -> None:
    store = FakeLedgerStore()
    dead, c = replica(store, "dead"), replica(store, "c", hold=5.0)
    k = key()
    assert await dead.acquire(k, redelivered=False)  # then kill -9: nobody renews
    waiting = asyncio.create_task(c.acquire(k, redelivered=True))
    await asyncio.sleep(0.6)
    assert not waiting.done()
    store.now += LEASE + 1
    assert await asyncio.wait_for(waiting, 2) is True
    assert store.rows[k].owner == "c"


async def test_a_live_holder_renews_its_lease_so_nothing_takes_it_over() -> None:
    store = FakeLedgerStore()
    a, c = replica(store, "a"), replica(store, "c", hold=1.0)
    k = key()
    assert await a.acquire(k, redelivered=False)
    a.start()
    try:
        store.now += LEASE - 1
        await asyncio.sleep(1.2)  # A's renewal runs meanwhile
        store.now += 2  # past the first lease, not the renewed one
        with pytest.raises(ClaimHeld):  # held for the whole hold, then handed back
            await c.acquire(k, redelivered=True)
    finally:
        await a.stop()


async def test_a_released_claim_goes_to_the_handed_back_copy_at_once() -> None:
    store = FakeLedgerStore()
    a, b = replica(store, "a"), replica(store, "b")
    k = key()
    assert await a.acquire(k, redelivered=False)
    await a.release(k)
    assert await b.acquire(k, redelivered=True)
    await a.release(k)  # not a's any more: nothing happens
    assert store.rows[k].owner == "b"


async def test_the_database_refusing_holds_then_hands_back_and_readiness_follows() -> None:
    store = FakeLedgerStore()
    ledger = replica(store, "a", hold=0.5)
    ledger.start()
    try:
        await asyncio.sleep(0.1)
        assert ledger.ready()
        store.down = True
        with pytest.raises(LedgerAway):
            await ledger.acquire(key(), redelivered=False)
        assert not ledger.ready()
        pending = asyncio.create_task(replica(store, "b", hold=5).acquire(key(), redelivered=False))
        await asyncio.sleep(0.5)
        store.down = False
        assert await asyncio.wait_for(pending, 5) is True  # held, then went through
        await asyncio.sleep(1.2)
        assert ledger.ready()
    finally:
        await ledger.stop()


async def test_finish_waits_out_an_outage_then_fails_loudly() -> None:
    store = FakeLedgerStore()
    ledger = replica(store, "a", hold=0.3)
    k = key()
    assert await ledger.acquire(k, redelivered=False)
    store.down = True
    with pytest.raises(LedgerAway):
        await ledger.finish(k)


async def test_purge_deletes_rows_past_retention_in_batches() -> None:
    store = FakeLedgerStore()
    ledger = replica(store, "a")
    old = [key() for _ in range(1200)]
    await asyncio.gather(*(ledger.acquire(k, redelivered=False) for k in old))
    store.now += (30 + LIFETIME_MARGIN_DAYS) * 86400 + 1
    fresh = key()
    await ledger.acquire(fresh, redelivered=False)
    assert await ledger.purge() == 1200
    assert list(store.rows) == [fresh]
    assert [n for name, n in store.calls if name == "purge"] == [1, 1, 1]


def test_keys_tell_intake_from_each_dispatched_attempt() -> None:
    job = uuid.uuid4()
    assert len({intake_key(job), dispatch_key(job, 1), dispatch_key(job, 2)}) == 3


async def test_a_key_asked_twice_in_one_batch_is_answered_once() -> None:
    calls: list[list[str]] = []

    async def run(keys: list[str]) -> dict[str, Seen]:
        calls.append(keys)
        return dict.fromkeys(keys, Seen.NEW)

    batcher = Batcher[str, Seen](run, repeat=Seen.BUSY)
    answers = await asyncio.gather(batcher.submit("x"), batcher.submit("x"), batcher.submit("y"))
    assert list(answers) == [Seen.NEW, Seen.BUSY, Seen.NEW]
    assert calls == [["x", "y"]]
