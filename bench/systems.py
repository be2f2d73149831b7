"""One measured run per system, each on its own throw-away vhost and database.

Every run is timed the same way: from the first publish to the moment the last job's
success became visible where that system's users look (hybridq: its job view, whose
`updated_at` is written in the transaction that makes it `succeeded` — and the bench waits
until the status API's /stats counts them all; Celery: `celery_taskmeta.date_done`;
Dramatiq: the result row's `finished_at`; the hop: the consumer's receive time).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import probe, seed
from bench.measure import Finder, Watch, named, single, tree
from bench.publish import Outgoing, publish_all
from devtools import environment
from devtools.stack import Stack, free_port
from services.status.adapters.queries import encode_cursor

BIN = Path(sys.executable).parent
SHARED = {
    "rabbitmq (node, shared)": named("beam.smp"),
    "postgres (server, shared)": named("postgres"),
}


@dataclass
class Run:
    system: str
    n: int
    sent: dict[str, float]
    visible: dict[str, float]
    watch: Watch
    lag_ms: list[float] = field(default_factory=list)
    config: str = ""
    broker: dict[str, int] = field(default_factory=dict)
    queues: dict[str, dict[str, int]] = field(default_factory=dict)  # per queue, broker's
    paced: bool = False
    stored: int = 0  # finished jobs seeded into the store before the run (--seed)
    seeding: dict[str, Any] = field(default_factory=dict)
    reads: dict[str, Any] = field(default_factory=dict)  # the read probe's output


def _queue_consumers(vhost: str, queue: str) -> int:
    url = f"{environment.MANAGEMENT}/api/queues/{quote(vhost, safe='')}/{queue}"
    response = httpx.get(url, auth=environment.ADMIN, timeout=10)
    return int(response.json().get("consumers", 0)) if response.status_code == 200 else 0


def _wait_consumers(vhost: str, queues: list[str], procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a worker exited before it consumed")
        if all(_queue_consumers(vhost, q) > 0 for q in queues):
            time.sleep(1)  # every process/thread of the worker attaches
            return
        time.sleep(0.5)
    raise TimeoutError(f"no consumer on {queues} after 60 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _until(done: Callable[[], Awaitable[bool]], n: int) -> None:
    deadline = time.monotonic() + max(120, n / 10)
    while not await done():
        if time.monotonic() > deadline:
            raise TimeoutError("the run did not finish in time")
        await asyncio.sleep(0.25)


async def _count(engine: AsyncEngine, sql: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


async def _rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


def _epoch(at: datetime) -> float:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def _pg_dsn(name: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


class Sandbox:
    """A throw-away vhost and database, removed afterwards whatever happens."""

    def __init__(self, system: str) -> None:
        self.name = f"hybridq_test_bench_{system}_{uuid.uuid4().hex[:6]}"
        self.queues: dict[str, dict[str, int]] = {}

    async def __aenter__(self) -> Sandbox:
        self.amqp_url = environment.create_vhost(self.name)
        self.db_url = environment.create_database(self.name)
        self.engine = create_async_engine(self.db_url)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        return self

    async def broker_totals(self) -> dict[str, int]:
        """The broker's own counters for this vhost (management API `/api/vhosts/<vhost>`
        `message_stats`): messages published into it (`publish`), delivered or fetched
        from its queues and streams (`deliver_get`), acked by consumers (`ack`, messages,
        not frames: a multiple ack counts every message it settles) and confirmed to
        publishers (`confirm`). Not our own code's counts. The statistics are refreshed
        every 5 s: read until two readings agree."""
        url = f"{environment.MANAGEMENT}/api/vhosts/{quote(self.name, safe='')}"
        last: dict[str, int] = {}
        now: dict[str, int] = {}
        for _ in range(6):
            stats = httpx.get(url, auth=environment.ADMIN, timeout=10).json()
            m = stats.get("message_stats", {})
            now = {
                "published": int(m.get("publish", 0)),
                "delivered": int(m.get("deliver_get", 0)),
                "acked": int(m.get("ack", 0)),
                "confirmed": int(m.get("confirm", 0)),
            }
            if now == last and now["published"]:
                break
            last = now
            await asyncio.sleep(5.5)  # the statistics interval is 5 s
        self.queues = self._queue_totals()
        return now

    def _queue_totals(self) -> dict[str, dict[str, int]]:
        """Per queue (and stream) of the vhost: messages routed into it and delivered from
        it (the same counters, `/api/queues/<vhost>`), to see where each job's go."""
        url = f"{environment.MANAGEMENT}/api/queues/{quote(self.name, safe='')}"
        out: dict[str, dict[str, int]] = {}
        for q in httpx.get(url, auth=environment.ADMIN, timeout=10).json():
            m = q.get("message_stats", {})
            if m.get("publish") or m.get("deliver_get"):
                out[q["name"]] = {
                    "in": int(m.get("publish", 0)),
                    "delivered": int(m.get("deliver_get", 0)),
                }
        return out

    async def __aexit__(self, *exc: object) -> None:
        await self.engine.dispose()
        environment.delete_vhost(self.name)
        environment.drop_database(self.name)


async def hybridq(
    n: int,
    concurrency: int,
    profile: Path | None = None,
    rate: float | None = None,
    *,
    stored: int = 0,
    probe_rate: float | None = None,
) -> Run:
    """Router + private worker + status as real processes; `noop` jobs published raw.

    `stored`: that many finished jobs seeded into the store first (`bench/seed.py`);
    `probe_rate`: the status API's reads timed meanwhile at that rate (`bench/probe.py`).
    """
    async with Sandbox("hybridq") as box:
        stack = Stack(
            {
                "AMQP_URL": box.amqp_url,
                "DATABASE_URL": box.db_url,
                "STATUS_HTTP_PORT": str(free_port()),
                "LOG_LEVEL": "WARNING",
                "WORKER_CONCURRENCY": str(concurrency),
            },
            box.dir / "logs",
        )
        names = ("router", "private_worker", "status")
        stack.migrate()
        seeded = await _seed(box, stored) if stored else None
        stack.start(*names)
        spies: list[subprocess.Popen[bytes]] = []
        reader: subprocess.Popen[bytes] | None = None
        try:
            stack.wait_ready()
            if seeded:
                await _check_stats(stack.api, box, stored)
            probing: dict[str, Finder] = {}
            if probe_rate:
                reader = await _start_probe(box, stack.api, probe_rate, seeded)
                probing["bench read probe"] = tree(reader.pid)
            watch = Watch(
                {
                    **{n_: tree(stack.processes[n_].pid) for n_ in names},
                    "bench publisher": single(os.getpid()),
                    **probing,
                    **SHARED,
                }
            )
            if profile:
                spies = [_spy(stack.processes[n_].pid, profile / n_) for n_ in names]
                time.sleep(1)
            messages = []
            for _ in range(n):
                job_id = str(uuid.uuid4())
                body = {"job_id": job_id, "job_type": "noop", "target_cloud": "private"}
                messages.append(
                    Outgoing(
                        job_id,
                        "job.submitted",
                        json.dumps(body).encode(),
                        properties={"content_type": "application/json"},
                    )
                )
            await asyncio.to_thread(watch.baseline)
            watch.start()
            if reader:
                assert reader.stdin is not None
                reader.stdin.write(b"go\n")
                reader.stdin.flush()
            sent = await publish_all(box.amqp_url, "jobs.intake", messages, rate=rate)
            async with httpx.AsyncClient(base_url=stack.api, timeout=10) as http:

                async def done() -> bool:
                    stats = (await http.get("/stats")).json()
                    return int(stats["by_status"].get("succeeded", 0)) >= n + stored

                await _until(done, n)
            if reader:
                assert reader.stdin is not None
                reader.stdin.close()  # the probe stops with the load
            watch.stop()
            reads = await _probe_result(reader, box) if reader else {}
            totals = await box.broker_totals()
            for spy in spies:
                spy.send_signal(signal.SIGINT)
            for spy in spies:
                spy.wait(60)
            sql = "SELECT job_id, updated_at, finished_at FROM jobs WHERE status = 'succeeded'"
            params: dict[str, Any] = {}
            if stored:  # the run's jobs only
                sql += " AND job_id = ANY(CAST(:ids AS uuid[]))"
                params["ids"] = [uuid.UUID(m.key) for m in messages]
            rows = await _rows(box.engine, sql, **params)
            name = f"hybridq at {rate:.0f}/s" if rate else "hybridq"
            config = f"router + private worker (WORKER_CONCURRENCY={concurrency}) + status"
            if stored:
                name += f", {stored:,} stored"
                config += f", {stored:,} finished jobs stored before the run"
            if probe_rate:
                config += f", read probe {probe_rate:g} req/s"
            return Run(
                name,
                n,
                sent,
                {str(r.job_id): _epoch(r.updated_at) for r in rows},
                watch,
                lag_ms=[(r.updated_at - r.finished_at).total_seconds() * 1000 for r in rows],
                config=config,
                broker=totals,
                queues=box.queues,
                paced=rate is not None,
                stored=stored,
                seeding=_seeding(seeded) if seeded else {},
                reads=reads,
            )
        finally:
            if reader:
                _stop(reader)
            for spy in spies:
                _stop(spy)
            stack.stop()


async def _seed(box: Sandbox, stored: int) -> seed.Seeded:
    print(f"  seeding {stored:,} finished jobs...", flush=True)
    seeded = await seed.seed(box.db_url, stored)
    print(
        f"  seeded {seeded.jobs:,} jobs, {seeded.events:,} events, {seeded.ledger_rows:,} "
        f"router ledger rows in {seeded.insert_seconds:.0f} s, then VACUUM (ANALYZE) + "
        f"CHECKPOINT {seeded.vacuum_seconds:.0f} s: {seeded.seconds:.0f} s in all",
        flush=True,
    )
    return seeded


def _seeding(seeded: seed.Seeded) -> dict[str, Any]:
    return {k: v for k, v in asdict(seeded).items() if k != "sample_ids"}


async def _check_stats(api: str, box: Sandbox, stored: int) -> None:
    """Once the status service is up: /stats (its counters) says what a full count says."""
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        by_status = (await http.get("/stats")).json()["by_status"]
    counted = await _count(box.engine, "SELECT count(*) FROM jobs WHERE status = 'succeeded'")
    total = await _count(box.engine, "SELECT count(*) FROM jobs")
    shown = {k: v for k, v in by_status.items() if v}
    if shown != {"succeeded": counted} or counted != stored or total != stored:
        raise RuntimeError(f"/stats {by_status} after seeding, but count(*) {counted}/{total}")
    print(f"  /stats after seeding: succeeded {counted:,} = count(*)", flush=True)


async def _start_probe(
    box: Sandbox, api: str, rate: float, seeded: seed.Seeded | None
) -> subprocess.Popen[bytes]:
    """The probe process, ready and waiting for `go`. With seeded jobs: their ids, and a
    cursor for the page that starts half the seeded jobs deep (as `queries.list_jobs`
    encodes it: the last row of the page before)."""
    plan = probe.Plan(api, rate)
    if seeded:
        depth = max(1, seeded.jobs // 2)
        [row] = await _rows(
            box.engine,
            "SELECT listed_at, job_id FROM jobs ORDER BY listed_at DESC, job_id DESC "
            "OFFSET :skip LIMIT 1",
            skip=depth - 1,
        )
        plan.ids = seeded.sample_ids
        plan.deep_cursor = encode_cursor(row.listed_at.isoformat(), row.job_id)
        plan.deep_depth = depth
    plan_file = box.dir / "probe-plan.json"
    plan_file.write_text(json.dumps(asdict(plan)))
    reader = subprocess.Popen(
        [sys.executable, "-m", "bench.probe", str(plan_file), str(box.dir / "probe.json")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert reader.stdout is not None
    line = await asyncio.to_thread(reader.stdout.readline)
    if line.strip() != b"ready":
        raise RuntimeError("the read probe did not start")
    return reader


async def _probe_result(reader: subprocess.Popen[bytes], box: Sandbox) -> dict[str, Any]:
    await asyncio.to_thread(reader.wait, 60)
    result: dict[str, Any] = json.loads((box.dir / "probe.json").read_text())
    return result


def _spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling one process (and its subprocesses) into a collapsed-stack file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            str(BIN / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "200",
            "--subprocesses",
            "--format",
            "raw",
            "--output",
            f"{out}.txt",
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _peer_env(box: Sandbox) -> dict[str, str]:
    return {**os.environ, "BENCH_AMQP_URL": box.amqp_url, "BENCH_PG_DSN": _pg_dsn(box.name)}


async def celery(n: int) -> Run:
    """One Celery worker `-c 2` (prefork) on queues public and private."""
    async with Sandbox("celery") as box:
        env = _peer_env(box)
        subprocess.run(
            [
                sys.executable,
                "-c",
                "from bench.peers.celery_app import app; app.backend.ResultSession().close()",
            ],
            env=env,
            check=True,
            capture_output=True,
        )  # the result table exists before the run, as in a deployed system
        log = (box.dir / "celery.log").open("ab")
        worker = subprocess.Popen(
            [
                str(BIN / "celery"),
                "-A",
                "bench.peers.celery_app",
                "worker",
                "-c",
                "2",
                "-P",
                "prefork",
                "-Q",
                "public,private",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "WARNING",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_consumers(box.name, ["public", "private"], [worker])
            watch = Watch(
                {
                    "celery worker": tree(worker.pid),
                    "bench publisher": single(os.getpid()),
                    **SHARED,
                }
            )
            messages = []
            for _ in range(n):
                task_id = str(uuid.uuid4())
                headers = {
                    "lang": "py",
                    "task": "bench.noop",
                    "id": task_id,
                    "shadow": None,
                    "eta": None,
                    "expires": None,
                    "group": None,
                    "group_index": None,
                    "retries": 0,
                    "timelimit": [None, None],
                    "root_id": task_id,
                    "parent_id": None,
                    "argsrepr": "()",
                    "kwargsrepr": "{}",
                    "origin": "bench",
                    "ignore_result": False,
                }
                body = [[], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
                messages.append(
                    Outgoing(
                        task_id,
                        "private",
                        json.dumps(body).encode(),
                        headers=headers,
                        properties={
                            "content_type": "application/json",
                            "content_encoding": "utf-8",
                            "correlation_id": task_id,
                            "priority": 0,
                        },
                    )
                )
            await asyncio.to_thread(watch.baseline)
            watch.start()
            sent = await publish_all(box.amqp_url, "", messages)

            async def done() -> bool:
                sql = "SELECT count(*) FROM celery_taskmeta WHERE status = 'SUCCESS'"
                return await _count(box.engine, sql) >= n

            await _until(done, n)
            watch.stop()
            rows = await _rows(
                box.engine,
                "SELECT task_id, date_done FROM celery_taskmeta WHERE status = 'SUCCESS'",
            )
            return Run(
                "celery",
                n,
                sent,
                {r.task_id: _epoch(r.date_done) for r in rows},
                watch,
                config="1 worker -c 2 prefork, task_track_started, db result backend, prefetch x16",
                broker=await box.broker_totals(),
            )
        finally:
            _stop(worker)


async def dramatiq(n: int) -> Run:
    """`dramatiq --processes 2 --threads 4`, two actors on queues public and private."""
    async with Sandbox("dramatiq") as box:
        env = _peer_env(box)
        from bench.peers.dramatiq_app import TABLE

        async with box.engine.begin() as conn:
            await conn.execute(text(TABLE))
        log = (box.dir / "dramatiq.log").open("ab")
        worker = subprocess.Popen(
            [
                str(BIN / "dramatiq"),
                "bench.peers.dramatiq_app",
                "--processes",
                "2",
                "--threads",
                "4",
                "--queues",
                "public",
                "private",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_consumers(box.name, ["public", "private"], [worker])
            watch = Watch(
                {
                    "dramatiq worker": tree(worker.pid),
                    "bench publisher": single(os.getpid()),
                    **SHARED,
                }
            )
            messages = []
            for _ in range(n):
                message_id = str(uuid.uuid4())
                body = {
                    "queue_name": "private",
                    "actor_name": "noop_private",
                    "args": [],
                    "kwargs": {},
                    "options": {},
                    "message_id": message_id,
                    "message_timestamp": int(time.time() * 1000),
                }
                messages.append(
                    Outgoing(
                        message_id, "private", json.dumps(body).encode(), properties={"priority": 0}
                    )
                )
            await asyncio.to_thread(watch.baseline)
            watch.start()
            sent = await publish_all(box.amqp_url, "", messages)

            async def done() -> bool:
                sql = "SELECT count(*) FROM dramatiq_results WHERE status = 'SUCCESS'"
                return await _count(box.engine, sql) >= n

            await _until(done, n)
            watch.stop()
            rows = await _rows(
                box.engine,
                "SELECT message_id, finished_at FROM dramatiq_results WHERE status = 'SUCCESS'",
            )
            return Run(
                "dramatiq",
                n,
                sent,
                {r.message_id: _epoch(r.finished_at) for r in rows},
                watch,
                config="--processes 2 --threads 4, confirm_delivery, STARTED/SUCCESS rows",
                broker=await box.broker_totals(),
            )
        finally:
            _stop(worker)


async def hop(n: int) -> Run:
    """One publisher process, one consumer process, one durable queue."""
    async with Sandbox("hop") as box:
        received, sent_file = box.dir / "received.json", box.dir / "sent.json"
        consumer = subprocess.Popen(
            [sys.executable, "-m", "bench.hop", "consume", box.amqp_url, str(n), str(received)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            assert consumer.stdout is not None
            assert consumer.stdin is not None
            await asyncio.to_thread(consumer.stdout.readline)  # "ready"
            publisher = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.hop",
                    "publish",
                    box.amqp_url,
                    str(n),
                    str(sent_file),
                ],
                stdin=subprocess.PIPE,
            )
            watch = Watch(
                {
                    "hop publisher": tree(publisher.pid),
                    "hop consumer": tree(consumer.pid),
                    **SHARED,
                }
            )
            await asyncio.sleep(1.5)  # the publisher has imported and waits on stdin
            await asyncio.to_thread(watch.baseline)
            watch.start()
            assert publisher.stdin is not None
            publisher.stdin.write(b"go\n")
            publisher.stdin.close()

            async def done() -> bool:
                return received.exists()

            await _until(done, n)
            watch.stop()
            consumer.stdin.close()
            await asyncio.to_thread(publisher.wait, 30)
            await asyncio.to_thread(consumer.wait, 30)
            return Run(
                "bare hop",
                n,
                json.loads(sent_file.read_text()),
                json.loads(received.read_text()),
                watch,
                config="aio-pika, persistent + confirmed, prefetch 200, ack each",
                broker=await box.broker_totals(),
            )
        finally:
            _stop(consumer)
