"""Schedules on the real stack: jobs fire every second and run with their schedule_id;
two status replicas never fire a time twice; a downtime gives one catch-up, no burst;
pause, resume, delete; 422s; the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from devtools.stack import Stack
from services.status.adapters.tables import outbox, schedule_firings, schedules
from services.status.domain.schedules import job_id_for
from tests.conftest import free_port
from tests.e2e.client import events, wait_for

pytestmark = pytest.mark.connected
NOOP = {"job_type": "noop", "params": {"from": "schedule"}}


@pytest.fixture(scope="module")
def stack_env(stack_env: dict[str, str]) -> dict[str, str]:
    return {**stack_env, "SCHEDULE_POLL_SECONDS": "0.1"}


@pytest.fixture
def second_status(stack: Stack, tmp_path: Path) -> Iterator[Stack]:
    """Another status service on the same broker and database (a replica)."""
    replica = Stack({**stack.env, "STATUS_HTTP_PORT": str(free_port())}, tmp_path)
    replica.start("status")
    try:
        replica.wait_ready()
        yield replica
    finally:
        assert replica.stop() == {"status": 0}


async def create(http: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await http.post("/schedules", json={"name": "t", "job": NOOP, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def firings(engine: AsyncEngine, schedule_id: str) -> list[Any]:
    query = (
        select(schedule_firings)
        .where(schedule_firings.c.schedule_id == UUID(schedule_id))
        .order_by(schedule_firings.c.fire_time)
    )
    async with engine.connect() as conn:
        return list((await conn.execute(query)).all())


async def jobs_of(http: httpx.AsyncClient, schedule_id: str) -> list[dict[str, Any]]:
    response = await http.get("/jobs", params={"schedule_id": schedule_id, "limit": 500})
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def all_jobs_seen(
    http: httpx.AsyncClient, engine: AsyncEngine, schedule_id: str, timeout: float = 20
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Once every claimed firing's job is in the job list: (firings, jobs)."""
    deadline = time.monotonic() + timeout
    while True:
        fired = await firings(engine, schedule_id)
        jobs = await jobs_of(http, schedule_id)
        if {str(f.job_id) for f in fired} == {j["job_id"] for j in jobs}:
            return fired, jobs
        assert time.monotonic() < deadline, (len(fired), len(jobs))
        await asyncio.sleep(0.2)


def claims(api: str) -> float:
    text = httpx.get(f"{api}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("hybridq_schedule_firings_total{")
    )


def assert_deterministic(schedule_id: str, fired: list[Any], every: int) -> None:
    first = fired[0].fire_time
    for f in fired:
        assert f.job_id == job_id_for(UUID(schedule_id), f.fire_time)
        assert (f.fire_time - first).total_seconds() % every == 0


async def test_every_second_jobs_fire_and_run_with_their_schedule_id(
    stack: Stack, engine: AsyncEngine
) -> None:
    async with httpx.AsyncClient(base_url=stack.api, timeout=10) as http:
        created = await create(http, every_seconds=1)
        schedule_id = created["schedule_id"]
        await asyncio.sleep(3.5)
        assert (await http.delete(f"/schedules/{schedule_id}")).status_code == 204
        fired, jobs = await all_jobs_seen(http, engine, schedule_id)
        assert len(fired) >= 2
        assert fired[0].fire_time == datetime.fromisoformat(created["next_run_at"])
        assert_deterministic(schedule_id, fired, 1)
        deadline = time.monotonic() + 20
        while {j["status"] for j in await jobs_of(http, schedule_id)} != {"succeeded"}:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        view = (await http.get(f"/jobs/{jobs[0]['job_id']}")).json()
        assert view["schedule_id"] == schedule_id
        assert view["params"] == {"from": "schedule"}
        # deleted: nothing more fires, and the schedule is gone
        await asyncio.sleep(1.5)
        assert len(await firings(engine, schedule_id)) == len(fired)
        assert (await http.get(f"/schedules/{schedule_id}")).status_code == 404


async def test_a_firing_published_again_runs_once(stack: Stack, engine: AsyncEngine) -> None:
    """The outbox may publish a firing twice (crash between publish and mark): the
    deterministic job_id makes the second copy a duplicate the router skips."""
    async with httpx.AsyncClient(base_url=stack.api, timeout=10) as http:
        schedule_id = (await create(http, every_seconds=1))["schedule_id"]
        await asyncio.sleep(2.5)
        await http.patch(f"/schedules/{schedule_id}", json={"enabled": False})
        fired, _ = await all_jobs_seen(http, engine, schedule_id)
        metric = 'hybridq_outbox_published_total{origin="schedule"}'
        published = await wait_metric(stack.api, metric, 0)
        async with engine.begin() as conn:  # as if every mark had been lost
            await conn.execute(
                update(outbox)
                .where(outbox.c.origin == f"schedule:{schedule_id}")
                .values(sent_at=None)
            )
        await wait_metric(stack.api, metric, published)
        await asyncio.sleep(1.5)  # time for the copies to reach the router and be skipped
        for f in fired:
            view = await wait_for(stack.api, str(f.job_id))
            assert view["status"] == "succeeded"
            history = [e["type"] for e in await events(stack.api, str(f.job_id))]
            assert history.count("JobSubmitted") == 1, history
            assert history.count("JobStarted") == 1, history
        assert len(await jobs_of(http, schedule_id)) == len(fired)
        await http.delete(f"/schedules/{schedule_id}")


async def wait_metric(api: str, name: str, above: float, timeout: float = 10) -> float:
    deadline = time.monotonic() + timeout
    while True:
        async with httpx.AsyncClient(timeout=5) as http:
            text = (await http.get(f"{api}/metrics")).text
        value = sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)
        )
        if value > above:
            return value
        assert time.monotonic() < deadline, f"{name} stayed at {value}"
        await asyncio.sleep(0.2)


async def test_two_status_replicas_fire_each_time_once(
    stack: Stack, second_status: Stack, engine: AsyncEngine
) -> None:
    before = claims(stack.api) + claims(second_status.api)
    async with httpx.AsyncClient(base_url=stack.api, timeout=10) as http:
        schedule_id = (await create(http, every_seconds=1))["schedule_id"]
        await asyncio.sleep(5)
        await http.patch(f"/schedules/{schedule_id}", json={"enabled": False})
        fired, jobs = await all_jobs_seen(http, engine, schedule_id)
        await http.delete(f"/schedules/{schedule_id}")
    assert len(fired) >= 3
    assert_deterministic(schedule_id, fired, 1)
    assert len({f.fire_time for f in fired}) == len(fired) == len(jobs)
    # every claim made a firing: no replica claimed a fire time another had claimed
    assert claims(stack.api) + claims(second_status.api) - before == len(fired)


async def test_pause_resume_and_a_paused_schedule_is_silent(
    stack: Stack, engine: AsyncEngine
) -> None:
    async with httpx.AsyncClient(base_url=stack.api, timeout=10) as http:
        created = await create(http, every_seconds=1, enabled=False)
        schedule_id = created["schedule_id"]
        assert created["next_run_at"] is None
        await asyncio.sleep(1.5)
        assert await firings(engine, schedule_id) == []
        resumed = (await http.patch(f"/schedules/{schedule_id}", json={"enabled": True})).json()
        assert resumed["enabled"] is True
        assert resumed["next_run_at"] is not None
        await asyncio.sleep(2.5)
        paused = (await http.patch(f"/schedules/{schedule_id}", json={"enabled": False})).json()
        assert paused["enabled"] is False
        assert paused["next_run_at"] is None
        count = len(await firings(engine, schedule_id))
        assert count >= 1
        await asyncio.sleep(2)
        assert len(await firings(engine, schedule_id)) == count
        view = (await http.get(f"/schedules/{schedule_id}")).json()
        fired, _ = await all_jobs_seen(http, engine, schedule_id)
        assert view["recent_job_ids"] == [str(f.job_id) for f in reversed(fired)][:10]
        assert view["last_run_at"] is not None
        await http.delete(f"/schedules/{schedule_id}")


async def test_after_downtime_one_catch_up_and_no_burst(stack: Stack, engine: AsyncEngine) -> None:
    async with httpx.AsyncClient(base_url=stack.api, timeout=10) as http:
        every = (await create(http, every_seconds=1))["schedule_id"]
        hourly = await create(http, every_seconds=3600)
        await asyncio.sleep(1.5)
        assert stack.stop("status") == {"status": 0}
        before = {f.job_id for f in await firings(engine, every)}
        # the hourly schedule: as if the database had waited 4 hours (4 fire times missed)
        due = datetime.fromisoformat(hourly["next_run_at"])
        async with engine.begin() as conn:
            await conn.execute(
                update(schedules)
                .where(schedules.c.schedule_id == UUID(hourly["schedule_id"]))
                .values(next_run_at=due - timedelta(hours=4))
            )
        await asyncio.sleep(4)  # the every-second schedule misses 4 or more fire times
        restarted = datetime.now(UTC)
        stack.start("status")
        stack.wait_ready()
        await asyncio.sleep(2)
        await http.patch(f"/schedules/{every}", json={"enabled": False})
        fired = [f for f in await firings(engine, every) if f.job_id not in before]
        hourly_fired = await firings(engine, hourly["schedule_id"])
        hourly_view = (await http.get(f"/schedules/{hourly['schedule_id']}")).json()
        await all_jobs_seen(http, engine, every)
        for schedule_id in (every, hourly["schedule_id"]):
            await http.delete(f"/schedules/{schedule_id}")
    assert [f.fire_time for f in hourly_fired] == [due - timedelta(hours=1)]  # latest only
    assert datetime.fromisoformat(hourly_view["next_run_at"]) == due
    assert fired, "no firing after the restart"
    # no burst: nothing fired for the times that passed while no status service ran,
    # except the one catch-up (the latest fire time before the firer came back)
    stale = [f for f in fired if f.fire_time < restarted - timedelta(seconds=1)]
    assert stale == [], [f.fire_time for f in stale]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "* * * *"}, "cron"),
        ({"cron": "0 25 * * *"}, "cron"),
        ({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"cron": "0 9 * * *", "every_seconds": 60}, "(body)"),
        ({}, "(body)"),
        ({"every_seconds": 0}, "every_seconds"),
        ({"every_seconds": 5, "job": {"job_type": "Bad Type"}}, "job.job_type"),
        ({"every_seconds": 5, "job": {"job_type": "noop", "job_id": "x"}}, "job.job_id"),
        (
            {
                "every_seconds": 5,
                "job": {
                    "job_type": "noop",
                    "data_classification": "confidential",
                    "target_cloud": "public",
                },
            },
            "job.target_cloud",
        ),
        ({"every_seconds": 5, "surprise": 1}, "surprise"),
    ],
)
async def test_bad_schedules_get_422_with_field_errors(
    stack: Stack, body: dict[str, Any], field: str
) -> None:
    async with httpx.AsyncClient(base_url=stack.api, timeout=10) as http:
        response = await http.post("/schedules", json={"name": "bad", "job": NOOP, **body})
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]], response.json()


async def test_unknown_and_malformed_schedule_ids(stack: Stack) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    async with httpx.AsyncClient(base_url=stack.api, timeout=10) as http:
        assert (await http.get(f"/schedules/{unknown}")).status_code == 404
        assert (await http.delete(f"/schedules/{unknown}")).status_code == 404
        patch = await http.patch(f"/schedules/{unknown}", json={"enabled": True})
        assert patch.status_code == 404
        assert (await http.get("/schedules/not-a-uuid")).status_code == 422
        assert (await http.patch(f"/schedules/{unknown}", json={})).status_code == 422


def hybridq(api: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hybridq_cli", *args, "--api", api],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_cli_manages_a_schedule(stack: Stack) -> None:
    added = hybridq(
        stack.api,
        "schedule",
        "add",
        "nightly",
        "noop",
        "--cron",
        "30 2 * * *",
        "--timezone",
        "Europe/Berlin",
        "--param",
        "n=3",
        "--json",
    )
    assert added.returncode == 0, added.stderr
    schedule_id = json.loads(added.stdout)["schedule_id"]
    listed = hybridq(stack.api, "schedule", "list")
    assert schedule_id in listed.stdout
    assert "30 2 * * * (Europe/Berlin)" in listed.stdout
    shown = json.loads(hybridq(stack.api, "schedule", "get", schedule_id, "--json").stdout)
    assert shown["job"]["params"] == {"n": 3}
    assert shown["timezone"] == "Europe/Berlin"
    assert hybridq(stack.api, "schedule", "pause", schedule_id).returncode == 0
    paused = json.loads(hybridq(stack.api, "schedule", "get", schedule_id, "--json").stdout)
    assert paused["enabled"] is False
    assert "next run" in hybridq(stack.api, "schedule", "resume", schedule_id).stdout
    assert hybridq(stack.api, "schedule", "delete", schedule_id).returncode == 0
    gone = hybridq(stack.api, "schedule", "get", schedule_id)
    assert gone.returncode == 1
    assert "404" in gone.stderr
    bad = hybridq(stack.api, "schedule", "add", "x", "noop", "--cron", "61 * * * *")
    assert bad.returncode == 1
    assert "cron" in bad.stderr
    usage = hybridq(stack.api, "schedule", "add", "x", "noop")
    assert usage.returncode == 2
