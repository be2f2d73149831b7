"""The status service's write use cases on the in-memory unit of work (tests/unit/fake_store):
groups and sagas, cancel, redrive, schedules, leases, the worker fleet and retention, with
no broker and no database. The same use cases run on Postgres in tests/integration."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.status.domain.arrivals import Arrival
from services.status.domain.dead_letters import DeadLetter
from services.status.domain.ids import compensation_job_id, lease_interrupted_event_id
from services.status.domain.schedules import Cadence, job_id_for
from services.status.domain.views import JobStatus
from services.status.service_layer import (
    groups,
    leases,
    operations,
    projecting,
    retention,
    schedules,
    workers,
)
from services.status.service_layer.unit_of_work import AlreadyGrouped, RedriveSelection
from shared import topology
from shared.contracts import events as ev
from shared.contracts.jobs import JobSubmitted, PlacedJob, Site
from shared.contracts.workers import AttemptLeased, RunningAttempt, WorkerHeartbeat
from shared.messages import Envelope
from tests.unit.fake_store import FakeStore

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
COMPENSATE = {"job_type": "noop", "params": {"undo": 1}}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def job(**fields: Any) -> JobSubmitted:
    return JobSubmitted(job_id=uuid.uuid4(), job_type="noop", **fields)


def submitted(envelopes: list[Envelope]) -> list[str]:
    return [json.loads(e.body)["job_id"] for e in envelopes if e.exchange == topology.INTAKE.name]


def events_of(envelopes: list[Envelope]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for e in envelopes:
        if e.exchange == topology.EVENTS.name:
            out.extend(json.loads(e.body)["events"])
    return out


async def project(store: FakeStore, *events: ev.Event) -> None:
    async with store.begin() as uow:
        await projecting.project(uow, [Arrival(e) for e in events])  # type: ignore[arg-type]


def placed_events(job_id: uuid.UUID, site: str = "private") -> list[ev.Event]:
    return [
        ev.JobSubmittedEvent(job_id=job_id, job_type="noop", occurred_at=T0),
        ev.JobRouted(
            job_id=job_id,
            site=site,  # type: ignore[arg-type]
            rule="default",
            reason="r",
            priority=5,
            occurred_at=T0 + timedelta(seconds=1),
        ),
    ]


def succeeded(job_id: uuid.UUID, site: str = "private") -> ev.Event:
    return ev.JobSucceeded(
        job_id=job_id,
        site=site,  # type: ignore[arg-type]
        attempt=1,
        duration_seconds=0.1,
        occurred_at=T0 + timedelta(seconds=2),
    )


def status(store: FakeStore, job_id: uuid.UUID) -> JobStatus:
    return store.views[job_id].fold.view.status


# -- groups and sagas ---------------------------------------------------------------------
async def test_a_group_is_recorded_with_its_submissions_in_one_transaction() -> None:
    store, a, b = FakeStore(), job(), job()
    group_id = uuid.uuid4()
    async with store.begin() as uow:
        await groups.create(uow, group_id, [(a, COMPENSATE), (b, None)])
    assert submitted(store.unsent()) == [str(a.job_id), str(b.job_id)]
    with pytest.raises(AlreadyGrouped):  # a job belongs to one group, and nothing is kept
        async with store.begin() as uow:
            await groups.create(uow, uuid.uuid4(), [(job(), None), (a, None)])
    assert len(store.unsent()) == 2


async def test_a_failed_member_compensates_every_member_that_succeeded() -> None:
    store, a, b, c = FakeStore(), job(), job(), job(priority=8)
    group_id = uuid.uuid4()
    async with store.begin() as uow:
        await groups.create(uow, group_id, [(a, COMPENSATE), (b, None), (c, COMPENSATE)])
    before = len(store.unsent())
    await project(store, *placed_events(a.job_id, "public"), succeeded(a.job_id, "public"))
    assert len(store.unsent()) == before  # nothing failed yet: nothing to compensate
    await project(store, ev.JobCancelled(job_id=b.job_id, reason="stop", occurred_at=T0))
    compensation = compensation_job_id(group_id, a.job_id)
    assert submitted(store.unsent())[-1] == str(compensation)
    (sent,) = [e for e in store.unsent() if json.loads(e.body)["job_id"] == str(compensation)]
    body = json.loads(sent.body)
    assert (body["target_cloud"], body["params"]) == ("public", {"undo": 1})
    # a member that succeeds after the failure is compensated then, once
    await project(store, *placed_events(c.job_id), succeeded(c.job_id))
    await project(store, succeeded(c.job_id))  # a duplicate ending
    late = compensation_job_id(group_id, c.job_id)
    assert submitted(store.unsent()).count(str(late)) == 1
    assert store.state.groups[group_id] is not None  # every member ended: settled


async def test_the_sweep_finds_an_ending_the_projection_never_saw() -> None:
    store, a, b = FakeStore(), job(), job()
    group_id = uuid.uuid4()
    async with store.begin() as uow:
        await groups.create(uow, group_id, [(a, COMPENSATE), (b, None)])
    await project(store, *placed_events(a.job_id), succeeded(a.job_id))
    await project(store, *placed_events(b.job_id))
    stored = store.views[b.job_id]  # made terminal by another writer
    view = stored.fold.view
    from dataclasses import replace

    store.state.folds[b.job_id] = replace(
        stored, fold=replace(stored.fold, view=replace(view, status=JobStatus.DEAD_LETTERED))
    )
    assert await groups.sweep(store.begin) == 1
    assert str(compensation_job_id(group_id, a.job_id)) in submitted(store.unsent())
    assert await groups.sweep(store.begin) == 0


# -- cancel -------------------------------------------------------------------------------
async def test_cancel_queues_one_cancellation_and_refuses_unknown_and_ended_jobs() -> None:
    store, job_id = FakeStore(), uuid.uuid4()
    with pytest.raises(operations.NotFound):
        async with store.begin() as uow:
            await operations.cancel(uow, job_id, "stop")
    await project(store, *placed_events(job_id))
    async with store.begin() as uow:
        queued = await operations.cancel(uow, job_id, "stop")
    assert queued.rows
    assert [e["type"] for e in events_of(store.unsent())] == ["JobCancelled"]
    (batch,) = [e for e in store.unsent() if e.exchange == topology.EVENTS.name]
    assert batch.routing_key == "events.status"  # the stream takes its cancellations there
    assert status(store, job_id) == "queued"  # shown once the broker has it (the API does)
    await project(store, *queued.events)
    with pytest.raises(operations.AlreadyTerminal):
        async with store.begin() as uow:
            await operations.cancel(uow, job_id, "again")


# -- redrive ------------------------------------------------------------------------------
def letter(job: PlacedJob, reason: str = "max_attempts") -> DeadLetter:
    body = job.model_dump_json()
    return DeadLetter(
        id=str(uuid.uuid4()),
        job_id=job.job_id,
        reason=reason,
        dead_lettered_at=T0,
        body=body,
        raw_body=body.encode(),
        job_type=job.job_type,
        attempts=job.attempt,
    )


async def test_a_redrive_claims_once_reopens_the_job_and_queues_its_dispatch() -> None:
    store = FakeStore()
    placed = PlacedJob(
        job_id=uuid.uuid4(), job_type="noop", site=Site.PRIVATE, attempt=3, max_attempts=3
    )
    await project(store, *placed_events(placed.job_id))
    dead = letter(placed)
    async with store.begin() as uow:
        await projecting.record_dead_letter(uow, dead)
    assert status(store, placed.job_id) == "dead_lettered"
    async with store.begin() as uow:
        first = await operations.redrive(uow, RedriveSelection(ids=[dead.id]), Site.PUBLIC)
    async with store.begin() as uow:
        again = await operations.redrive(uow, RedriveSelection(ids=[dead.id]), None)
    assert (first.claimed, again.claimed) == (1, 0)
    view = store.views[placed.job_id].fold.view
    assert (view.status, view.site, view.attempts, view.max_attempts) == (
        "queued",
        "public",
        3,
        6,  # "3 of 6": a fresh budget of the job's own 3
    )
    (dispatch,) = [e for e in store.unsent() if e.exchange == topology.DISPATCH.name]
    again_job = PlacedJob.model_validate_json(dispatch.body)
    assert (again_job.attempt, again_job.first_attempt, again_job.site) == (4, 4, Site.PUBLIC)
    assert again_job.attempt_in_budget == 1  # its retry waits start from the first again


async def test_a_confidential_job_is_not_redriven_to_public() -> None:
    store = FakeStore()
    placed = PlacedJob(
        job_id=uuid.uuid4(),
        job_type="noop",
        site=Site.PRIVATE,
        data_classification="confidential",  # type: ignore[arg-type]
    )
    dead = letter(placed)
    async with store.begin() as uow:
        await projecting.record_dead_letter(uow, dead)
    async with store.begin() as uow:
        result = await operations.redrive(uow, RedriveSelection(ids=[dead.id]), Site.PUBLIC)
    assert result.claimed == 0
    assert result.skipped == [(dead.id, "residency: confidential stays private")]
    assert store.unsent() == []


# -- schedules ----------------------------------------------------------------------------
async def test_a_schedule_fires_once_per_fire_time_and_only_the_latest_missed() -> None:
    clock = Clock()
    store = FakeStore(clock)
    async with store.begin() as uow:
        created = await schedules.create(
            uow,
            name="every minute",
            cadence=Cadence(every_seconds=60),
            job={"job_type": "noop"},
            enabled=True,
            now=T0,
        )
    later = T0 + timedelta(minutes=90, seconds=20)  # 90 fire times missed
    fired = await schedules.fire_due(store.begin, later)
    assert [f.fire_time for f in fired] == [T0 + timedelta(minutes=90)]
    assert fired[0].caught_up
    assert await schedules.fire_due(store.begin, later) == []  # claimed once
    expected = job_id_for(created.schedule_id, T0 + timedelta(minutes=90))
    assert submitted(store.unsent()) == [str(expected)]


async def test_deleting_a_schedule_withdraws_what_it_has_not_published() -> None:
    store = FakeStore()
    async with store.begin() as uow:
        created = await schedules.create(
            uow,
            name="s",
            cadence=Cadence(every_seconds=1),
            job={"job_type": "noop"},
            enabled=True,
            now=T0,
        )
    await schedules.fire_due(store.begin, T0 + timedelta(seconds=1))
    assert len(store.unsent()) == 1
    async with store.begin() as uow:
        assert await schedules.delete(uow, created.schedule_id)
    assert store.unsent() == []


async def test_a_paused_schedule_does_not_fire_and_resumes_after_the_pause() -> None:
    store = FakeStore()
    async with store.begin() as uow:
        created = await schedules.create(
            uow,
            name="s",
            cadence=Cadence(every_seconds=10),
            job={"job_type": "noop"},
            enabled=True,
            now=T0,
        )
    async with store.begin() as uow:
        await schedules.set_enabled(uow, created.schedule_id, False, T0)
    assert await schedules.fire_due(store.begin, T0 + timedelta(hours=1)) == []
    async with store.begin() as uow:
        await schedules.set_enabled(uow, created.schedule_id, True, T0 + timedelta(seconds=55))
    resumed = store.state.schedules[created.schedule_id]
    assert resumed.next_run_at == T0 + timedelta(seconds=65)


# -- leases and the worker fleet ----------------------------------------------------------
def leased(job: PlacedJob, instance: uuid.UUID, seconds: float = 3) -> AttemptLeased:
    return AttemptLeased(
        worker="w",
        instance=instance,
        site=job.site,
        job=job,
        lease_seconds=seconds,
        retry_base_seconds=1,
        retry_max_seconds=2,
    )


async def test_a_lapsed_lease_of_a_running_attempt_interrupts_it_once() -> None:
    clock = Clock()
    store, instance = FakeStore(clock), uuid.uuid4()
    placed = PlacedJob(job_id=uuid.uuid4(), job_type="sleep", site=Site.PRIVATE, max_attempts=3)
    started = ev.JobStarted(
        job_id=placed.job_id, site=Site.PRIVATE, attempt=1, worker="w", occurred_at=T0
    )
    await project(store, *placed_events(placed.job_id), started)
    async with store.begin() as uow:
        await workers.record(uow, leased(placed, instance))
    clock.now = T0 + timedelta(seconds=2)
    beat = WorkerHeartbeat(
        worker="w",
        instance=instance,
        site=Site.PRIVATE,
        job_types=["sleep"],
        concurrency=1,
        running=[RunningAttempt(job_id=placed.job_id, attempt=1, job_type="sleep", started_at=T0)],
        interval_seconds=1,
    )
    async with store.begin() as uow:
        await workers.record(uow, beat)  # renewed
    clock.now = T0 + timedelta(seconds=4)
    async with store.begin() as uow:
        assert await leases.sweep(uow, 60, clock.now, random.Random(1)) == 0  # not lapsed yet
    clock.now = T0 + timedelta(seconds=6)
    async with store.begin() as uow:
        assert await leases.sweep(uow, 60, clock.now, random.Random(1)) == 1
    async with store.begin() as uow:
        assert await leases.sweep(uow, 60, clock.now, random.Random(1)) == 0  # taken once
    (failed,) = events_of(store.unsent())
    assert failed["type"] == "JobFailed"
    assert failed["event_id"] == str(lease_interrupted_event_id(placed.job_id, 1))
    (retry,) = [e for e in store.unsent() if e.exchange == topology.DELAY.name]
    assert PlacedJob.model_validate_json(retry.body).attempt == 2


async def test_a_lapsed_lease_of_an_attempt_that_ended_is_only_tidied() -> None:
    clock = Clock()
    store, instance = FakeStore(clock), uuid.uuid4()
    placed = PlacedJob(job_id=uuid.uuid4(), job_type="sleep", site=Site.PRIVATE)
    await project(store, *placed_events(placed.job_id), succeeded(placed.job_id))
    async with store.begin() as uow:
        await workers.record(uow, leased(placed, instance))
    clock.now = T0 + timedelta(seconds=10)
    async with store.begin() as uow:
        assert await leases.sweep(uow, 60, clock.now, random.Random(1)) == 0
    assert store.state.leases == {}
    assert store.unsent() == []


async def test_no_lease_is_judged_before_the_sweeper_has_been_healthy_for_its_period() -> None:
    clock = Clock()
    store, instance = FakeStore(clock), uuid.uuid4()
    placed = PlacedJob(job_id=uuid.uuid4(), job_type="sleep", site=Site.PRIVATE)
    async with store.begin() as uow:
        await workers.record(uow, leased(placed, instance, seconds=3))
    clock.now = T0 + timedelta(seconds=10)
    async with store.begin() as uow:
        assert await leases.sweep(uow, 1.0, clock.now, random.Random(1)) == 0
    assert store.state.leases  # kept until the sweeper has been up for a lease period


# -- retention ----------------------------------------------------------------------------
async def test_retention_deletes_old_terminal_jobs_and_keeps_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retention, "BATCH", 2)
    store = FakeStore()
    old = [uuid.uuid4() for _ in range(5)]
    running = uuid.uuid4()
    for job_id in old:
        await project(
            store,
            ev.JobSubmittedEvent(job_id=job_id, job_type="noop", occurred_at=T0),
            ev.JobCancelled(job_id=job_id, reason="x", occurred_at=T0),
        )
    await project(store, ev.JobSubmittedEvent(job_id=running, job_type="noop", occurred_at=T0))
    deleted = await retention.purge(store.begin, timedelta(days=1), T0 + timedelta(days=3))
    assert deleted == len(old)
    assert set(store.views) == {running}
    assert all(e.job_id == running for e in store.events.values())
