"""`--seed N`: N finished jobs written straight into a migrated status store before a run.

Each seeded job is a `noop` job on the private site that went the whole way, as the
running system would have stored it: its `jobs` row (the view the projection folds from
its events, `status_attempt`/`status_rank`, `listed_at`, `updated_at`, and where the fold
stopped, `folded_*`), its four events in
`job_events` (JobSubmitted, JobRouted, JobStarted, JobSucceeded, payloads as the status
store writes them: `model_dump(mode="json")`, the router's uuid5 event ids) and the
router's de-duplication ledger row (`job:<id>`, done), which a real job leaves behind for
RETENTION_DAYS + 8 days.

The fixed parts of every row (the view's columns, each event's payload) come from the
real code: the router's placement and event constructors, the projection's `reduce` over
the four events. Python makes each job's ids (uuid4 job id, uuid5 event ids) and COPYs
them into a temporary table, one chunk at a time; one set-based statement per chunk then
draws the timestamps and writes the jobs, events and ledger rows. The `job_counts`
triggers (migration 0009) see each chunk as one statement and keep the counters exact.
Jobs are spread over the past SPREAD_DAYS days (older than the run, younger than the
30-day retention so it deletes none while the run goes). Afterwards: VACUUM (ANALYZE) of
the seeded tables (statistics, visibility map, and no autovacuum of 5 million fresh rows
during the run), a CHECKPOINT, a check of the counters against a full count, and a check
that a sample of seeded jobs is exactly what the projection makes of their events.
"""

from __future__ import annotations

import json
import random
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from services.router.intake import event_id, routed_event
from services.status.domain.projection import Fold, reduce, sort_key
from services.status.domain.views import FOLDED_FIELDS
from shared.contracts.events import (
    JobStarted,
    JobSubmittedEvent,
    JobSucceeded,
    parse_event,
)
from shared.contracts.jobs import JobSubmitted, PlacedJob, Site
from shared.placement.decision import Placement, place
from shared.placement.rules import load_rules
from shared.settings import DEFAULT_RULES_FILE

CHUNK = 50_000
SPREAD_DAYS = 27.0  # the oldest seeded job is SPREAD_DAYS + NEWEST_HOURS old
NEWEST_HOURS = 1.0
SAMPLE_IDS = 2_000  # job ids handed to the read probe
CHECKED = 100  # seeded jobs re-projected from their events after seeding
LEDGER_LEASE_SECONDS = 15.0  # ROUTER_CLAIM_LEASE_SECONDS' default

# what a job's timestamps are apart (seconds, uniform between the two figures), close to
# what a quiet run shows: router accept -> routed, routed -> started, the noop handler,
# the last event -> its view written by the projection
ROUTE = (0.002, 0.006)
PICK_UP = (0.005, 0.015)
RUN = (0.001, 0.005)
PROJECT = (0.010, 0.050)


@dataclass(frozen=True)
class Seeded:
    jobs: int
    events: int
    ledger_rows: int
    insert_seconds: float
    vacuum_seconds: float
    sample_ids: list[str]  # random seeded job ids (for GET /jobs/{id}, its events)

    @property
    def seconds(self) -> float:
        return self.insert_seconds + self.vacuum_seconds


def _iso(column: str) -> str:
    """SQL: a timestamptz as pydantic writes an aware datetime in JSON (UTC, `Z`,
    microseconds only when not zero)."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN to_char({utc}, 'US') = "
        f"'000000' THEN '' ELSE '.' || to_char({utc}, 'US') END || 'Z'"
    )


def _between(bounds: tuple[float, float]) -> str:
    low, high = bounds
    return f"make_interval(secs => {low} + {high - low} * random())"


_SQL = f"""
WITH src AS (
    SELECT s.job_id, s.submitted_id, s.routed_id,
           gen_random_uuid() AS started_id, gen_random_uuid() AS succeeded_id,
           t.submitted, t.submitted + t.route AS routed,
           t.submitted + t.route + t.pick_up AS started,
           t.submitted + t.route + t.pick_up + t.run AS finished,
           t.submitted + t.route + t.pick_up + t.run + t.project AS projected
    FROM seed_ids s CROSS JOIN LATERAL (
        SELECT $1::timestamptz + make_interval(secs => (s.i + random()) * $2) AS submitted,
               {_between(ROUTE)} AS route, {_between(PICK_UP)} AS pick_up,
               {_between(RUN)} AS run, {_between(PROJECT)} AS project
    ) t
),
j AS (
    INSERT INTO jobs
    SELECT r.* FROM src CROSS JOIN LATERAL jsonb_populate_record(NULL::jobs,
        $3::jsonb || jsonb_build_object(
            'job_id', job_id, 'submitted_at', submitted, 'started_at', started,
            'finished_at', finished, 'listed_at', submitted,
            'updated_at', projected + interval '0.5 ms',
            'folded_at', finished, 'folded_rank', {JobSucceeded.rank},
            'folded_event', succeeded_id)) AS r
),
l AS (
    INSERT INTO router_ledger (key, state, owner, lease_until, claimed_at)
    SELECT 'job:' || job_id, 'done', $8, submitted + make_interval(secs => $9), submitted
    FROM src
)
INSERT INTO job_events (event_id, job_id, type, rank, occurred_at, recorded_at, payload)
SELECT e.event_id, src.job_id, e.type, e.rank, e.occurred_at, src.projected,
       e.template || jsonb_build_object(
           'job_id', src.job_id, 'event_id', e.event_id, 'occurred_at', e.iso) || e.extra
FROM src CROSS JOIN LATERAL (VALUES
    (submitted_id, 'JobSubmitted', 0, submitted, {_iso("submitted")}, $4::jsonb, '{{}}'::jsonb),
    (routed_id, 'JobRouted', 3, routed, {_iso("routed")}, $5::jsonb, '{{}}'::jsonb),
    (started_id, 'JobStarted', 4, started, {_iso("started")}, $6::jsonb, '{{}}'::jsonb),
    (succeeded_id, 'JobSucceeded', 7, finished, {_iso("finished")}, $7::jsonb,
     jsonb_build_object('duration_seconds',
                        round(extract(epoch FROM finished - started), 6)::float8))
) AS e(event_id, type, rank, occurred_at, iso, template, extra)
"""


@dataclass(frozen=True)
class _Templates:
    view: dict[str, Any]  # the jobs row but for the per-job columns
    submitted: dict[str, Any]  # each event's payload but for job_id, event_id, occurred_at
    routed: dict[str, Any]
    started: dict[str, Any]
    succeeded: dict[str, Any]  # ... and duration_seconds


_PER_EVENT = ("job_id", "event_id", "occurred_at")
_PER_JOB = (
    "job_id",
    "submitted_at",
    "started_at",
    "finished_at",
    "listed_at",
    "updated_at",
    "folded_at",
    "folded_rank",
    "folded_event",
)


def _lifecycle(job_id: UUID, at: datetime, worker: str) -> list[Any]:
    """The four events of one noop job on the private site, built by the real code."""
    job = JobSubmitted(job_id=job_id, job_type="noop", target_cloud=Site.PRIVATE)
    decision = place(job, load_rules(DEFAULT_RULES_FILE), lambda: 0)
    assert isinstance(decision, Placement), decision
    placed = PlacedJob(
        **job.model_dump(), site=decision.site, rule=decision.rule, reason=decision.reason
    )
    ms = timedelta(milliseconds=1)
    return [
        JobSubmittedEvent(
            event_id=event_id(job_id, "submitted"), occurred_at=at, **job.spec_fields()
        ),
        routed_event(placed, decision).model_copy(update={"occurred_at": at + 4 * ms}),
        JobStarted(
            job_id=job_id,
            site=placed.site,
            attempt=placed.attempt,
            worker=worker,
            occurred_at=at + 12 * ms,
        ),
        JobSucceeded(
            job_id=job_id,
            site=placed.site,
            attempt=placed.attempt,
            result={},
            duration_seconds=0.003,
            occurred_at=at + 15 * ms,
        ),
    ]


def _row(
    fold: Fold, listed_at: datetime, updated_at: datetime, events: list[Any]
) -> dict[str, Any]:
    """The `jobs` row the status store writes for a view folded from `events`
    (adapters/postgres/jobs.py `_row`; `folded_*`, migration 0010: the last event folded)."""
    row = {name: getattr(fold.view, name) for name in (*FOLDED_FIELDS, "job_id")}
    attempt, rank = fold.key
    folded_at, folded_rank, folded_event = max(sort_key(e) for e in events)
    return {
        **row,
        "status_attempt": attempt,
        "status_rank": rank,
        "listed_at": listed_at,
        "updated_at": updated_at,
        "folded_at": folded_at,
        "folded_rank": folded_rank,
        "folded_event": UUID(folded_event),
    }


def _templates(worker: str) -> _Templates:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    events = _lifecycle(uuid.uuid4(), at, worker)
    fold = reduce(events[0].job_id, events)
    assert fold.view.status == "succeeded", fold
    row = _row(fold, at, at, events)
    payloads = [
        {k: v for k, v in e.model_dump(mode="json").items() if k not in _PER_EVENT} for e in events
    ]
    payloads[3].pop("duration_seconds")
    return _Templates({k: v for k, v in row.items() if k not in _PER_JOB}, *payloads[:4])


def _ids(lo: int, hi: int) -> list[tuple[int, UUID, UUID, UUID]]:
    out = []
    for i in range(lo, hi):
        job_id = uuid.uuid4()
        out.append((i, job_id, event_id(job_id, "submitted"), event_id(job_id, "routed")))
    return out


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def seed(db_url: str, n: int, *, now: datetime | None = None) -> Seeded:
    """Write `n` finished jobs (4 events, 1 ledger row each) into the migrated database."""
    worker = f"private@{socket.gethostname()}"
    t = _templates(worker)
    newest = (now or datetime.now(UTC)) - timedelta(hours=NEWEST_HOURS)
    oldest = newest - timedelta(days=SPREAD_DAYS)
    slot = (newest - oldest).total_seconds() / max(n, 1)
    owner = f"{socket.gethostname()}/seed/{uuid.uuid4().hex[:8]}"
    rng = random.Random()
    sample: list[str] = []
    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        await conn.execute("SET synchronous_commit = off")  # this session only
        await conn.execute(
            "CREATE TEMP TABLE seed_ids (i integer, job_id uuid, submitted_id uuid, "
            "routed_id uuid) ON COMMIT DELETE ROWS"
        )
        params = (
            json.dumps(t.view),
            json.dumps(t.submitted),
            json.dumps(t.routed),
            json.dumps(t.started),
            json.dumps(t.succeeded),
            owner,
            LEDGER_LEASE_SECONDS,
        )
        started = time.monotonic()
        for lo in range(0, n, CHUNK):
            hi = min(n, lo + CHUNK)
            ids = _ids(lo, hi)
            # the probe's sample: an equal share from every chunk
            share = max(1, SAMPLE_IDS * (hi - lo) // max(n, 1))
            sample += [str(r[1]) for r in rng.sample(ids, min(share, len(ids)))]
            async with conn.transaction():
                await conn.copy_records_to_table("seed_ids", records=ids)
                await conn.execute(_SQL, oldest, slot, *params)
            if hi == n or (hi // CHUNK) % 4 == 0:
                print(
                    f"  seeded {hi:,} / {n:,} jobs ({time.monotonic() - started:.0f} s)",
                    flush=True,
                )
        inserted = time.monotonic() - started
        started = time.monotonic()
        await conn.execute("SET maintenance_work_mem = '256MB'")  # this session only
        await conn.execute("VACUUM (ANALYZE) jobs, job_events, router_ledger, job_counts")
        await conn.execute("CHECKPOINT")  # start the run without the seed's dirty pages
        vacuumed = time.monotonic() - started
        await _check_counts(conn, n)
        await _check_sample(conn, rng.sample(sample, min(CHECKED, len(sample))))
        events = int(await conn.fetchval("SELECT count(*) FROM job_events"))
        ledger = int(await conn.fetchval("SELECT count(*) FROM router_ledger"))
    finally:
        await conn.close()
    return Seeded(n, events, ledger, inserted, vacuumed, sample)


async def _check_counts(conn: asyncpg.Connection, n: int) -> None:
    """The triggers' counters are exactly a full count of `jobs`."""
    counted = await conn.fetch(
        "SELECT coalesce(site, '') AS site, status, count(*) AS n FROM jobs GROUP BY 1, 2"
    )
    kept = await conn.fetch("SELECT site, status, n FROM job_counts WHERE n <> 0")
    as_set = {(r["site"], r["status"], r["n"]) for r in counted}
    if as_set != {(r["site"], r["status"], r["n"]) for r in kept}:
        raise RuntimeError(f"job_counts {list(map(dict, kept))} != count(*) {as_set}")
    if sum(r["n"] for r in counted) != n:
        raise RuntimeError(f"{n} jobs seeded but {sum(r['n'] for r in counted)} stored")


async def _check_sample(conn: asyncpg.Connection, job_ids: list[str]) -> None:
    """Seeded jobs are what the projection makes of their stored events: each payload
    parses and dumps back to itself, and the view folded from the four events is the
    stored row (every column, `listed_at` = `submitted_at`, `updated_at` after the end).
    A column of `jobs` the seeder does not know stops the run: bench/seed.py needs it."""
    columns = [c for c in (await _columns(conn)) if c not in ("listed_at", "updated_at")]
    for job_id in job_ids:
        row = await conn.fetchrow("SELECT * FROM jobs WHERE job_id = $1", UUID(job_id))
        payloads = [
            json.loads(p)
            for (p,) in await conn.fetch(
                "SELECT payload::text FROM job_events WHERE job_id = $1 "
                "ORDER BY occurred_at, rank, event_id",
                UUID(job_id),
            )
        ]
        events = [parse_event(p) for p in payloads]
        if [e.model_dump(mode="json") for e in events] != payloads or len(events) != 4:
            raise RuntimeError(f"seeded events of {job_id} are not as the store writes them")
        fold = reduce(UUID(job_id), events)
        view = fold.view
        expected = _row(fold, view.submitted_at or row["listed_at"], row["updated_at"], events)
        if unknown := [c for c in columns if c not in expected]:
            raise RuntimeError(f"jobs has columns bench/seed.py does not fill: {unknown}")
        got = {c: _plain(row[c]) for c in columns}
        want = {c: _plain(expected[c]) for c in columns}
        if got != want or row["listed_at"] != view.submitted_at:
            raise RuntimeError(f"seeded job {job_id}: stored {got}, projected {want}")
        if not (view.finished_at and row["updated_at"] > view.finished_at):
            raise RuntimeError(f"seeded job {job_id}: updated_at before it finished")


async def _columns(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs' "
        "ORDER BY ordinal_position"
    )
    return [r["column_name"] for r in rows]


def _plain(value: Any) -> Any:
    """asyncpg hands jsonb back as text; the view has it decoded."""
    if isinstance(value, str) and value[:1] in "{[":
        return json.loads(value)
    return value
