"""Benchmarks: `make bench` (or `python -m bench.throughput [--jobs N]`).

Prints figures measured on this machine, on a throw-away vhost and database:
1. end to end: N noop jobs published raw to jobs.intake until the status service shows
   them all succeeded (router + private worker + status, real RabbitMQ and Postgres);
   per-job latency from submitted_at to finished_at;
2. projection: events per second the status store commits, in batches and one by one;
3. placement: decisions per second of the pure placement function.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from devtools import environment
from devtools.stack import Stack
from services.status.adapters.tables import jobs
from shared.contracts import events as ev
from shared.contracts.jobs import JobSpec
from shared.placement.decision import place
from shared.placement.rules import load_rules
from shared.settings import DEFAULT_RULES_FILE
from tests.integration.store_helpers import apply_events


async def end_to_end(n: int, concurrency: int) -> None:
    name = f"hybridq_test_bench_{uuid.uuid4().hex[:8]}"
    amqp_url = environment.create_vhost(name)
    db_url = environment.create_database(name)
    state = Path(tempfile.mkdtemp())
    stack = Stack(
        {
            "AMQP_URL": amqp_url,
            "DATABASE_URL": db_url,
            "STATUS_HTTP_PORT": "8765",
            "LOG_LEVEL": "WARNING",
            "WORKER_CONCURRENCY": str(concurrency),
        },
        state / "logs",
    )
    engine = create_async_engine(db_url)
    try:
        stack.migrate()
        stack.start()
        stack.wait_ready()
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange("jobs.intake")
            started = time.perf_counter()
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            json.dumps(
                                {
                                    "job_id": str(uuid.uuid4()),
                                    "job_type": "noop",
                                    "target_cloud": "private",
                                }
                            ).encode(),
                            content_type="application/json",
                            delivery_mode=2,
                        ),
                        routing_key="job.submitted",
                    )
                    for _ in range(n)
                )
            )
            published = time.perf_counter() - started
        done = 0
        while done < n:
            await asyncio.sleep(0.2)
            async with engine.connect() as conn:
                done = (
                    await conn.execute(
                        select(func.count()).select_from(jobs).where(jobs.c.status == "succeeded")
                    )
                ).scalar_one()
        elapsed = time.perf_counter() - started
        async with engine.connect() as conn:
            rows = (await conn.execute(select(jobs.c.submitted_at, jobs.c.finished_at))).all()
        latencies = sorted((f - s).total_seconds() * 1000 for s, f in rows)
        print(
            f"end to end: {n} noop jobs (publish with confirms {published:.2f} s), all "
            f"succeeded in {elapsed:.2f} s = {n / elapsed:.0f} jobs/s "
            f"[WORKER_CONCURRENCY={concurrency}]"
        )
        print(
            f"  submitted->finished latency: p50 {statistics.median(latencies):.0f} ms, "
            f"p95 {latencies[int(0.95 * len(latencies)) - 1]:.0f} ms "
            f"(includes the backlog the burst builds)"
        )
    finally:
        stack.stop()
        await engine.dispose()
        environment.delete_vhost(name)
        environment.drop_database(name)


async def projection(n: int) -> None:
    name = f"hybridq_test_bench_{uuid.uuid4().hex[:8]}"
    db_url = environment.create_database(name)
    from services.status.migrate import upgrade

    engine = create_async_engine(db_url)
    t0 = datetime.now(UTC)

    def lifecycle() -> list[ev.Event]:
        job_id = uuid.uuid4()
        at = [t0 + timedelta(milliseconds=i) for i in range(4)]
        return [
            ev.JobSubmittedEvent(job_id=job_id, job_type="noop", occurred_at=at[0]),
            ev.JobRouted(
                job_id=job_id,
                site="private",
                rule="default",
                reason="r",  # type: ignore[arg-type]
                priority=5,
                occurred_at=at[1],
            ),
            ev.JobStarted(
                job_id=job_id,
                site="private",
                attempt=1,
                worker="w",  # type: ignore[arg-type]
                occurred_at=at[2],
            ),
            ev.JobSucceeded(
                job_id=job_id,
                site="private",
                attempt=1,  # type: ignore[arg-type]
                duration_seconds=0.001,
                occurred_at=at[3],
            ),
        ]

    try:
        await asyncio.to_thread(upgrade, db_url)
        for batch in (200, 1):
            events = [e for _ in range(n // 4 // (1 if batch > 1 else 10)) for e in lifecycle()]
            started = time.perf_counter()
            for i in range(0, len(events), batch):
                await apply_events(engine, events[i : i + batch])
            took = time.perf_counter() - started
            print(
                f"projection: {len(events)} events in batches of {batch}: "
                f"{len(events) / took:.0f} events/s"
            )
    finally:
        await engine.dispose()
        environment.drop_database(name)


def placement(n: int) -> None:
    rules = load_rules(DEFAULT_RULES_FILE)
    specs = [JobSpec(job_type=t) for t in ("noop", "8k_transcode", "sleep")]
    started = time.perf_counter()
    for i in range(n):
        place(specs[i % 3], rules, lambda: 50)
    took = time.perf_counter() - started
    print(f"placement: {n / took:,.0f} decisions/s ({took / n * 1e6:.1f} us each)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--events", type=int, default=20000)
    args = parser.parse_args()
    asyncio.run(end_to_end(args.jobs, args.concurrency))
    asyncio.run(projection(args.events))
    placement(200_000)


if __name__ == "__main__":
    main()
