"""Worker behaviour on FastStream's in-memory broker."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from faststream.rabbit import TestRabbitBroker
from faststream.rabbit.message import RabbitMessage as Delivery

from shared import topology
from shared.bus import Bus
from shared.contracts.jobs import Site
from shared.settings import WorkerSettings
from shared.worker.builtins import register_builtins
from shared.worker.handlers import JobContext, Registry
from shared.worker.service import Worker, build
from tests.unit.capture import capture

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


BUILT: list[Worker] = []


@pytest.fixture(autouse=True)
async def close_pools() -> AsyncIterator[None]:
    yield
    while BUILT:
        await BUILT.pop().pool.close()


def worker(site: Site, registry: Registry | None = None, **settings: Any) -> Worker:
    config = WorkerSettings(
        RETRY_BASE_SECONDS=1, RETRY_MAX_SECONDS=300, WORKER_NAME="w1", **settings
    )
    built = build(
        site, config, registry=registry or register_builtins(Registry()), clock=lambda: NOW
    )
    built.runner.rng = random.Random(7)
    BUILT.append(built)
    return built


def placed(site: str, job_type: str = "noop", **fields: Any) -> bytes:
    return json.dumps(
        {"job_id": str(uuid.uuid4()), "job_type": job_type, "site": site, **fields}
    ).encode()


async def dispatch(w: Worker, site: str, body: bytes) -> None:
    await w.broker.publish(body, exchange=topology.DISPATCH, routing_key=site)


async def test_runs_a_job_and_reports_its_lifecycle() -> None:
    w = worker(Site.PRIVATE)
    seen = capture(w.broker)
    async with TestRabbitBroker(w.broker):
        await dispatch(w, "private", placed("private", "transcode", params={"work_ms": 5}))
    types = seen.types()
    assert types[0] == "JobStarted"
    assert types[-1] == "JobSucceeded"
    assert types.count("JobProgress") == 10
    succeeded = seen.events[-1]
    assert (succeeded["site"], succeeded["attempt"]) == ("private", 1)
    assert len(succeeded["result"]["digest"]) == 16


async def test_public_worker_refuses_confidential_jobs() -> None:
    w = worker(Site.PUBLIC)
    seen = capture(w.broker)
    async with TestRabbitBroker(w.broker):
        await dispatch(w, "public", placed("public", data_classification="confidential"))
    [(_, headers)] = seen.dead_letters
    assert headers["x-hybridq-reason"] == "residency"
    assert headers["x-hybridq-source-queue"] == "jobs.public"
    assert seen.types() == ["JobDeadLettered"]
    assert seen.events[0]["reason"] == "residency: confidential job refused by the public worker"


async def test_private_worker_runs_confidential_jobs() -> None:
    w = worker(Site.PRIVATE)
    seen = capture(w.broker)
    async with TestRabbitBroker(w.broker):
        await dispatch(w, "private", placed("private", data_classification="confidential"))
    assert seen.types() == ["JobStarted", "JobSucceeded"]


async def test_failed_attempt_is_retried_later_through_a_delay_tier() -> None:
    w = worker(Site.PRIVATE)
    seen = capture(w.broker)
    async with TestRabbitBroker(w.broker):
        await dispatch(w, "private", placed("private", "fail", params={"error": "disk full"}))
    assert seen.types() == ["JobStarted", "JobFailed"]
    failed = seen.events[1]
    assert failed["error"] == "RuntimeError: disk full"
    wait = (datetime.fromisoformat(failed["retry_at"]) - NOW).total_seconds()
    assert 0.8 <= wait <= 1.2
    [(_, retry)] = seen.delayed
    assert (retry["attempt"], retry["run_at"]) == (2, failed["retry_at"])


async def test_last_attempt_failing_dead_letters_the_job() -> None:
    w = worker(Site.PRIVATE)
    seen = capture(w.broker)
    async with TestRabbitBroker(w.broker):
        await dispatch(w, "private", placed("private", "fail", attempt=3, max_attempts=3))
    assert seen.types() == ["JobStarted", "JobFailed", "JobDeadLettered"]
    assert seen.events[1]["retry_at"] is None
    assert (seen.events[2]["reason"], seen.events[2]["attempts"]) == (
        "max_attempts: RuntimeError: failed on purpose",
        3,
    )
    [(body, headers)] = seen.dead_letters
    assert headers["x-hybridq-reason"] == "max_attempts"
    assert json.loads(body)["attempt"] == 3
    assert not seen.delayed


async def test_attempt_over_its_timeout_fails_with_timeout() -> None:
    w = worker(Site.PRIVATE)
    seen = capture(w.broker)
    async with TestRabbitBroker(w.broker):
        await dispatch(
            w, "private", placed("private", "sleep", params={"seconds": 5}, timeout_seconds=0.05)
        )
    failed = [e for e in seen.events if e["type"] == "JobFailed"]
    assert failed
    assert failed[0]["error"].startswith("timeout")


async def test_permanent_handler_errors_are_not_retried() -> None:
    w = worker(Site.PRIVATE)
    seen = capture(w.broker)
    async with TestRabbitBroker(w.broker):
        await dispatch(w, "private", placed("private", "sleep", params={"seconds": "soon"}))
    assert seen.types() == ["JobStarted", "JobFailed", "JobDeadLettered"]
    assert seen.events[2]["reason"].startswith("permanent_error: ")


async def test_custom_handlers_plug_in() -> None:
    registry = Registry()

    @registry.handler("thumbnail", default_timeout=5)
    async def thumbnail(ctx: JobContext) -> dict[str, Any]:
        await ctx.progress(50, "half")
        return {"size": ctx.params["size"]}

    w = worker(Site.PUBLIC, registry)
    seen = capture(w.broker)
    async with TestRabbitBroker(w.broker):
        await dispatch(w, "public", placed("public", "thumbnail", params={"size": 64}))
        await dispatch(w, "public", placed("public", "noop"))
    succeeded = [e for e in seen.events if e["type"] == "JobSucceeded"]
    assert [e["result"] for e in succeeded] == [{"size": 64}]
    [(_, headers)] = seen.dead_letters
    assert headers["x-hybridq-reason"] == "unknown_job_type"


@pytest.mark.parametrize("body", [b"[]", b"{}", b"not json"])
async def test_unreadable_placed_jobs_are_dead_lettered(body: bytes) -> None:
    w = worker(Site.PRIVATE)
    seen = capture(w.broker)
    async with TestRabbitBroker(w.broker):
        await dispatch(w, "private", body)
    [(dead, headers)] = seen.dead_letters
    assert (dead, headers["x-hybridq-reason"]) == (body, "schema")


def _record_settling(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    settled: list[str] = []

    async def nack(self: Delivery, **kwargs: Any) -> None:
        settled.append(f"nack requeue={kwargs.get('requeue')}")

    async def ack(self: Delivery, **kwargs: Any) -> None:
        settled.append("ack")

    async def reject(self: Delivery, **kwargs: Any) -> None:
        settled.append("reject")

    for name, fake in (("nack", nack), ("ack", ack), ("reject", reject)):
        monkeypatch.setattr(Delivery, name, fake)
    return settled


async def test_a_broker_error_holds_the_delivery_and_runs_the_attempt_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The broker refusing an outcome's publish is not the message's fault: the delivery is
    held and the same outcome published again until it goes through, then acked; never
    handed back (a quorum queue would count it against the delivery limit), never
    dead-lettered, and the attempt is not run a second time."""
    settled = _record_settling(monkeypatch)
    monkeypatch.setattr("shared.holding.FIRST_WAIT_SECONDS", 0.01)
    tries: list[str] = []

    async def broker_away_twice(self: Bus, event: Any) -> None:
        tries.append(str(event.event_id))
        if len(tries) <= 2:
            raise ConnectionResetError("broker connection lost")

    def emitted(self: Bus, *events: Any) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    monkeypatch.setattr(Bus, "event", broker_away_twice)
    monkeypatch.setattr(Bus, "emit", emitted)
    w = worker(Site.PRIVATE)  # no capture subscriber: the worker's is the only delivery
    runs: list[str] = []
    run = w.runner.executor.run

    async def counted(ctx: JobContext) -> dict[str, Any]:
        runs.append(str(ctx.job_id))
        return await run(ctx)

    monkeypatch.setattr(w.runner.executor, "run", counted)
    async with TestRabbitBroker(w.broker):
        await dispatch(w, "private", placed("private"))
    assert settled == ["ack"]
    assert len(tries) == 3
    assert len(set(tries)) == 1  # the same JobSucceeded each time
    assert len(runs) == 1


async def test_a_held_delivery_whose_channel_is_lost_is_left_to_the_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Held through broker trouble until its channel closes: then neither acked (the
    outcome is not published) nor handed back (a closed channel returns it by itself)."""
    settled = _record_settling(monkeypatch)
    monkeypatch.setattr("shared.holding.FIRST_WAIT_SECONDS", 0.01)
    tries: list[str] = []

    async def broker_away(self: Bus, event: object) -> None:
        tries.append("event")
        raise ConnectionResetError("broker connection lost")

    monkeypatch.setattr(Bus, "event", broker_away)
    monkeypatch.setattr("shared.worker.service.delivery_alive", lambda msg: len(tries) < 3)
    monkeypatch.setattr("shared.service.delivery_alive", lambda msg: len(tries) < 3)
    w = worker(Site.PRIVATE)
    async with TestRabbitBroker(w.broker):
        await dispatch(w, "private", placed("private"))
    assert settled == []
    assert len(tries) == 3
