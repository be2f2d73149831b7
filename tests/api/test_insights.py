"""The overview's reads on the real database through the real status process:
GET /stats/timings (percentiles of queue wait and run time, per job type),
GET /stats/throughput (finished jobs per bucket), GET /jobs?job_id_prefix=."""

from __future__ import annotations

import re
import statistics
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from devtools.stack import Stack
from services.status.adapters import insights, queries
from shared.contracts import events as ev
from tests.api.conftest import client
from tests.integration.store_helpers import apply_events

pytestmark = pytest.mark.connected

# hours ago, on the hour: within the status service's retention (RETENTION_DAYS), which
# would otherwise remove the seeded jobs while the tests read them
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
RANGE = {"since": T0.isoformat(), "until": (T0 + timedelta(hours=1)).isoformat()}
ALPHA_WAITS = [float(i) for i in range(1, 11)]  # 10 jobs: waits 1..10 s, runs 2..20 s
BETA_WAIT, BETA_RUN = 5.0, 1.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ran(
    job_type: str, submitted: float, wait: float, run: float, *, ok: bool = True
) -> tuple[uuid.UUID, list[ev.Event]]:
    job_id = uuid.uuid4()
    started = submitted + wait
    ending: ev.Event = (
        ev.JobSucceeded(
            job_id=job_id,
            site="public",
            attempt=1,
            duration_seconds=run,
            occurred_at=at(started + run),
        )
        if ok
        else ev.JobDeadLettered(
            job_id=job_id, reason="failed", attempts=1, occurred_at=at(started + run)
        )
    )
    return job_id, [
        ev.JobSubmittedEvent(job_id=job_id, job_type=job_type, occurred_at=at(submitted)),
        ev.JobRouted(
            job_id=job_id,
            site="public",
            rule="r",
            reason="x",
            priority=5,
            occurred_at=at(submitted + 0.001),
        ),
        ev.JobStarted(job_id=job_id, site="public", attempt=1, worker="w", occurred_at=at(started)),
        ending,
    ]


def rejected(submitted: float) -> tuple[uuid.UUID, list[ev.Event]]:
    job_id = uuid.uuid4()
    return job_id, [
        ev.JobSubmittedEvent(job_id=job_id, job_type="beta", occurred_at=at(submitted)),
        ev.JobRejected(job_id=job_id, reason="no rule", occurred_at=at(submitted + 0.5)),
    ]


@pytest.fixture(scope="module")
async def seeded(status: Stack, database_url: str) -> AsyncIterator[dict[str, Any]]:
    """alpha: 10 succeeded; beta: 2 dead-lettered and 1 rejected; one alpha job finished
    two hours later (outside the range)."""
    engine = create_async_engine(database_url)
    stories = [ran("alpha", 60 * i, w, 2 * w) for i, w in enumerate(ALPHA_WAITS)]
    stories += [ran("beta", 100 + i, BETA_WAIT, BETA_RUN, ok=False) for i in range(2)]
    stories.append(rejected(200))
    stories.append(ran("alpha", 7200, 1000, 1000))
    for _, story in stories:
        await apply_events(engine, story)
    yield {"engine": engine, "ids": [job_id for job_id, _ in stories]}
    await engine.dispose()


def percentile(values: list[float], q: float) -> float:
    """The linear-interpolation percentile, worked out by the standard library."""
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


async def test_timings_give_percentiles_per_job_type(seeded: dict[str, Any], status: Stack) -> None:
    async with client(status) as http:
        response = await http.get("/stats/timings", params=RANGE)
    assert response.status_code == 200, response.text
    body = response.json()
    rows = {row["job_type"]: row for row in body["items"]}
    assert [row["job_type"] for row in body["items"]] == ["(all)", "alpha", "beta"]
    alpha = rows["alpha"]
    assert alpha["finished"] == 10
    assert alpha["outcomes"] == {"succeeded": 10, "dead_lettered": 0, "rejected": 0, "cancelled": 0}
    for q, name in [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")]:
        assert alpha["queue_wait"][name] == pytest.approx(percentile(ALPHA_WAITS, q))
        runs = [2 * w for w in ALPHA_WAITS]
        assert alpha["run_time"][name] == pytest.approx(percentile(runs, q))
    beta = rows["beta"]
    assert beta["finished"] == 3  # the rejected job counts, with no timings
    assert beta["outcomes"] == {"succeeded": 0, "dead_lettered": 2, "rejected": 1, "cancelled": 0}
    assert beta["queue_wait"] == {"p50": BETA_WAIT, "p95": BETA_WAIT, "p99": BETA_WAIT}
    assert beta["run_time"]["p99"] == pytest.approx(BETA_RUN)
    everything = rows["(all)"]
    assert everything["finished"] == 13
    waits = ALPHA_WAITS + [BETA_WAIT] * 2
    assert everything["queue_wait"]["p50"] == pytest.approx(percentile(waits, 0.5))
    assert everything["outcomes"]["rejected"] == 1


async def test_timings_of_an_empty_range_are_zero_and_null(
    seeded: dict[str, Any], status: Stack
) -> None:
    params = {"since": "2020-01-01T00:00:00Z", "until": "2020-01-01T01:00:00Z"}
    async with client(status) as http:
        body = (await http.get("/stats/timings", params=params)).json()
    assert body["items"] == [
        {
            "job_type": "(all)",
            "finished": 0,
            "outcomes": {"succeeded": 0, "dead_lettered": 0, "rejected": 0, "cancelled": 0},
            "queue_wait": {"p50": None, "p95": None, "p99": None},
            "run_time": {"p50": None, "p95": None, "p99": None},
        }
    ]


async def test_throughput_counts_finished_jobs_per_bucket(
    seeded: dict[str, Any], status: Stack
) -> None:
    params = {**RANGE, "bucket_seconds": 600}
    async with client(status) as http:
        response = await http.get("/stats/throughput", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["bucket_seconds"] == 600
    buckets = body["buckets"]
    assert [datetime.fromisoformat(b["start"]) for b in buckets] == [
        T0 + timedelta(minutes=10 * i) for i in range(6)
    ]
    # alpha job i ends at 60 i + 3 w: 3..30 s, 63..
    ends = [60 * i + 3 * w for i, w in enumerate(ALPHA_WAITS)]
    expected = [sum(1 for e in ends if 600 * b <= e < 600 * (b + 1)) for b in range(6)]
    assert [b["succeeded"] for b in buckets] == expected
    assert [b["dead_lettered"] for b in buckets] == [2, 0, 0, 0, 0, 0]
    assert [b["rejected"] for b in buckets] == [1, 0, 0, 0, 0, 0]
    assert sum(b["succeeded"] for b in buckets) == 10  # not the one two hours later


async def test_default_range_and_bucket(seeded: dict[str, Any], status: Stack) -> None:
    async with client(status) as http:
        body = (await http.get("/stats/throughput")).json()
    since, until = (datetime.fromisoformat(body[k]) for k in ("since", "until"))
    assert until - since == timedelta(minutes=15)
    assert body["bucket_seconds"] == 15
    assert len(body["buckets"]) == 60


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        (
            "/stats/timings",
            {"since": "2026-03-01T11:00:00Z", "until": "2026-03-01T10:00:00Z"},
            "since",
        ),
        (
            "/stats/timings",
            {"since": "2026-01-01T00:00:00Z", "until": "2026-03-01T10:00:00Z"},
            "since",
        ),
        ("/stats/throughput", {**RANGE, "bucket_seconds": 1}, "bucket_seconds"),
        ("/stats/throughput", {**RANGE, "bucket_seconds": 0}, "bucket_seconds"),
        ("/stats/timings", {"since": "yesterday"}, "since"),
    ],
)
async def test_bad_ranges_are_422(
    status: Stack, path: str, params: dict[str, Any], field: str
) -> None:
    async with client(status) as http:
        response = await http.get(path, params=params)
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]]


async def test_a_job_is_found_by_a_prefix_of_its_id(seeded: dict[str, Any], status: Stack) -> None:
    ids: list[uuid.UUID] = seeded["ids"]
    target = str(ids[3])
    async with client(status) as http:
        for prefix in [
            target[:8],
            target[:13],
            target[:11].upper(),
            target.replace("-", "")[:12],
            target,
        ]:
            response = await http.get("/jobs", params={"job_id_prefix": prefix})
            assert response.status_code == 200, (prefix, response.text)
            found = [j["job_id"] for j in response.json()["items"]]
            assert found == [target], prefix
        one_digit = target[0]
        body = (await http.get("/jobs", params={"job_id_prefix": one_digit, "limit": 500})).json()
        assert {j["job_id"] for j in body["items"]} == {
            str(i) for i in ids if str(i)[0] == one_digit
        }


@pytest.mark.parametrize(
    "prefix", ["3fa85f64-57-", "3fa8-5f64", "xyz", "-", "", "0" * 33, "0" * 37]
)
async def test_a_prefix_no_id_can_start_with_is_422(status: Stack, prefix: str) -> None:
    async with client(status) as http:
        response = await http.get("/jobs", params={"job_id_prefix": prefix})
    assert response.status_code == 422, (prefix, response.text)


async def test_the_prefix_search_and_the_timings_read_through_indexes(
    seeded: dict[str, Any],
) -> None:
    """With sequential scans priced out, the plans use the primary key and the index of
    finished jobs: a filter no index serves would still scan the table."""
    engine: AsyncEngine = seeded["engine"]
    job_query = queries._jobs_with_group().where(queries.prefix_filter("3fa85f64-57"))
    compiled = [
        job_query.compile(engine.sync_engine, compile_kwargs={"literal_binds": True}),
        insights.timings_query(T0, T0 + timedelta(hours=1)).compile(
            engine.sync_engine, compile_kwargs={"literal_binds": True}
        ),
    ]
    async with engine.connect() as conn:
        await conn.execute(text("SET enable_seqscan = off"))
        plans = [
            "\n".join(r[0] for r in await conn.execute(text(f"EXPLAIN {c}"))) for c in compiled
        ]
    assert re.search(r"Index Scan using pk_jobs.*\n.*Index Cond: \(\(job_id >=", plans[0]), plans[0]
    assert re.search(r"ix_jobs_finished.*\n.*Index Cond: \(\(finished_at >=", plans[1]), plans[1]
    assert "Seq Scan on jobs" not in plans[0] + plans[1]
