"""The read probe: the status API's reads, timed while a hybridq run's load goes.

`python -m bench.probe PLAN OUT` (started by the bench, a process of its own so its CPU is
measured apart and a publishing burst in the bench cannot stall its clock) prints `ready`,
waits for `go` on stdin, then sends one request every 1/rate s, open loop (a slow answer
does not delay the next request), round-robin over ENDPOINTS, until stdin closes; then it
writes each endpoint's latencies (ms, request sent to whole body read) and error count to
OUT as JSON.

PLAN (JSON) names the API, the rate, and what to read: with seeded jobs, random seeded job
ids and a cursor for a page about half the seeded jobs deep, fixed before the load starts;
without (`ids` empty), job ids are taken from the `succeeded` jobs the probe's own
listings return, and the deep page walks back through the list page by page from the
first page's `next_cursor` (a request due before any job or cursor is known is sent as a
first page and counted as one).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

FIRST = "GET /jobs (first page)"
DEEP = "GET /jobs (deep page)"
JOB = "GET /jobs/{id}"
EVENTS = "GET /jobs/{id}/events"
STATS = "GET /stats"
ENDPOINTS = (FIRST, DEEP, JOB, EVENTS, STATS)
PAGE = 50
POOL = 1_000  # job ids kept when they come from the listings


@dataclass
class Plan:
    api: str
    rate: float
    ids: list[str] = field(default_factory=list)
    deep_cursor: str | None = None
    deep_depth: int | None = None  # jobs listed before the deep page (for the report)


@dataclass
class _State:
    plan: Plan
    ms: dict[str, list[float]] = field(default_factory=lambda: {e: [] for e in ENDPOINTS})
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENDPOINTS, 0))
    pool: list[str] = field(default_factory=list)
    first_next: str | None = None
    walk: str | None = None
    rng: random.Random = field(default_factory=random.Random)
    began: float = field(default_factory=time.perf_counter)
    timeline: list[tuple[float, str, float, float | None, float | None]] = field(
        default_factory=list
    )
    """Each answer: (s after the probe began, endpoint, client ms, service ms, database ms),
    to tell whether slow answers come together (a stall) or apart."""

    def target(self, endpoint: str) -> tuple[str, str]:
        """(endpoint counted, path) for a request due on `endpoint`."""
        if endpoint == STATS:
            return STATS, "/stats"
        if endpoint == DEEP:
            cursor = self.plan.deep_cursor or self.walk or self.first_next
            if cursor:
                return DEEP, f"/jobs?limit={PAGE}&cursor={cursor}"
        if endpoint in (JOB, EVENTS):
            ids = self.plan.ids or self.pool
            if ids:
                job_id = self.rng.choice(ids)
                return endpoint, f"/jobs/{job_id}" + ("/events" if endpoint == EVENTS else "")
        return FIRST, f"/jobs?limit={PAGE}"

    def learn(self, endpoint: str, body: dict[str, Any]) -> None:
        """Without a plan: ids of succeeded jobs and cursors from the listings."""
        if self.plan.ids or endpoint not in (FIRST, DEEP):
            return
        for item in body.get("items", []):
            if item.get("status") == "succeeded":
                if len(self.pool) < POOL:
                    self.pool.append(item["job_id"])
                else:
                    self.pool[self.rng.randrange(POOL)] = item["job_id"]
        if endpoint == FIRST:
            self.first_next = body.get("next_cursor")
        else:
            self.walk = body.get("next_cursor")  # None at the end: start over


def server_timing(header: str) -> dict[str, float]:
    """`app;dur=12.3, db;dur=4.5` -> {"app": 12.3, "db": 4.5} (what can be read of it)."""
    found: dict[str, float] = {}
    for part in header.split(","):
        name, _, rest = part.strip().partition(";dur=")
        try:
            found[name] = float(rest)
        except ValueError:
            continue
    return found


async def _one(http: httpx.AsyncClient, state: _State, due: str) -> None:
    endpoint, path = state.target(due)
    started = time.perf_counter()
    try:
        response = await http.get(path)
        ms = (time.perf_counter() - started) * 1000
    except httpx.HTTPError:
        state.ms[endpoint].append((time.perf_counter() - started) * 1000)
        state.errors[endpoint] += 1
        return
    state.ms[endpoint].append(ms)
    # each answer's own Server-Timing: its time in the status service, and the database's
    timing = server_timing(response.headers.get("server-timing", ""))
    state.timeline.append(
        (
            round(started - state.began, 4),
            endpoint,
            round(ms, 2),
            timing.get("app"),
            timing.get("db"),
        )
    )
    if response.status_code != 200:
        state.errors[endpoint] += 1
        return
    if not state.plan.ids and endpoint in (FIRST, DEEP):
        state.learn(endpoint, response.json())


async def probe(plan: Plan, stop: asyncio.Event) -> dict[str, Any]:
    """Requests at `plan.rate` until `stop` is set; the latencies and errors per endpoint."""
    state = _State(plan)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(base_url=plan.api, timeout=10, limits=limits) as http:
        start = loop.time()
        k = 0
        while not stop.is_set():
            wait = start + k / plan.rate - loop.time()
            if wait > 0:
                try:
                    await asyncio.wait_for(stop.wait(), wait)
                    break
                except TimeoutError:
                    pass
            task = asyncio.create_task(_one(http, state, ENDPOINTS[k % len(ENDPOINTS)]))
            pending.add(task)
            task.add_done_callback(pending.discard)
            k += 1
        seconds = loop.time() - start
        await asyncio.gather(*pending)
    return {
        "rate": plan.rate,
        "seconds": seconds,
        "deep_depth": plan.deep_depth,
        "ids": "seeded" if plan.ids else "succeeded jobs of the run",
        "ms": state.ms,
        "timeline": state.timeline,
        "errors": state.errors,
    }


async def _main(plan_file: str, out: str) -> None:
    with open(plan_file) as f:
        plan = Plan(**json.load(f))
    stop = asyncio.Event()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # "go"
    task = asyncio.create_task(probe(plan, stop))
    await asyncio.to_thread(sys.stdin.read)  # until the bench closes stdin
    stop.set()
    result = await task
    with open(f"{out}.part", "w") as f:
        json.dump(result, f)
    os.rename(f"{out}.part", out)


def main() -> None:
    asyncio.run(_main(sys.argv[1], sys.argv[2]))


if __name__ == "__main__":
    main()
