"""The ledger check, counted the way RabbitMQ's Jepsen tests count messages.

After the load and its faults, every job the client was told was accepted (confirm or 202)
must reach exactly one terminal state: its view is terminal, its history holds exactly
one *kind* of terminal event (after the last redrive, the contract's one exception), and
that kind matches the view. Counted:

- lost: confirmed (or seen by hybridq at all) but never terminal;
- duplicated: the same attempt of a job started twice (a second dispatch of one attempt:
  what a duplicate submission or a double dispatch looks like; an attempt interrupted by
  a fault is retried under the next attempt number, which is not a duplicate);
- conflicting: two kinds of terminal event, or a view that disagrees with its history;
- unexpected: a job of this run that the client never submitted;
- wrong outcome: terminal, but not the status the job type ends in (noop succeeds);
- queues: ready or unacked messages left once everything is terminal.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import httpx

from tests.faults.load import Load

TERMINAL_EVENTS = {
    "JobSucceeded": "succeeded",
    "JobDeadLettered": "dead_lettered",
    "JobCancelled": "cancelled",
    "JobRejected": "rejected",
}
TERMINAL = set(TERMINAL_EVENTS.values())
KEPT_QUEUES = {"jobs.dead-letter"}  # holds dead letters for operators by design

Queues = Callable[[], dict[str, tuple[int, int]]]


@dataclass
class Summary:
    name: str
    confirmed: int = 0
    indeterminate: int = 0
    recovered: int = 0  # indeterminate or refused jobs that hybridq did take
    terminal: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    conflicting: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    wrong_outcome: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)  # POST /jobs: a 5xx but 503
    ran_twice: int = 0  # completed more than once (at-least-once redelivery: allowed)
    left_in_queues: dict[str, tuple[int, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"[{self.name}] confirmed={self.confirmed} indeterminate={self.indeterminate} "
            f"recovered={self.recovered} terminal={self.terminal} lost={len(self.lost)} "
            f"duplicated={len(self.duplicated)} conflicting={len(self.conflicting)} "
            f"unexpected={len(self.unexpected)} wrong_outcome={len(self.wrong_outcome)} "
            f"http_5xx={len(self.server_errors)} ran_twice={self.ran_twice} "
            f"left_in_queues={self.left_in_queues or 0}"
        )

    def report(self) -> str:
        parts = [self.line()]
        labels = ("lost", "duplicated", "conflicting", "unexpected", "wrong_outcome")
        for label in (*labels, "server_errors"):
            items: list[str] = getattr(self, label)
            if items:
                parts.append(f"  {label}: " + "; ".join(items[:8]))
        parts += [f"  note: {n}" for n in self.notes]
        return "\n".join(parts)

    def problems(self, *, duplicates_allowed: bool = False) -> list[str]:
        found = [
            label
            for label in ("lost", "conflicting", "unexpected", "wrong_outcome", "server_errors")
            if getattr(self, label)
        ]
        if self.duplicated and not duplicates_allowed:
            found.append("duplicated")
        if self.left_in_queues:
            found.append("left_in_queues")
        return found


async def all_views(http: httpx.AsyncClient, run: str) -> dict[str, dict[str, Any]]:
    """Every job view of this run (tagged `params.run`), through the list endpoint."""
    views: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = (await http.get("/jobs", params=params)).raise_for_status().json()
        for item in page["items"]:
            if (item.get("params") or {}).get("run") == run:
                views[item["job_id"]] = item
        cursor = page.get("next_cursor")
        if not cursor:
            return views


async def wait_terminal(
    api: Callable[[], str], load: Load, timeout: float
) -> dict[str, dict[str, Any]]:
    """Poll until every confirmed job (and every other job hybridq took) is terminal."""
    deadline = time.monotonic() + timeout
    views: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        try:
            async with httpx.AsyncClient(base_url=api(), timeout=10) as http:
                views = await all_views(http, load.run)
        except httpx.HTTPError:
            await asyncio.sleep(1)
            continue
        waiting = set(load.confirmed) | set(views)
        if all(views.get(j, {}).get("status") in TERMINAL for j in waiting):
            return views
        await asyncio.sleep(0.5)
    return views


async def check(
    name: str,
    api: Callable[[], str],
    load: Load,
    queues: Queues,
    timeout: float = 60,
) -> Summary:
    views = await wait_terminal(api, load, timeout)
    summary = Summary(
        name,
        confirmed=len(load.confirmed),
        indeterminate=len(load.indeterminate),
        server_errors=load.server_errors,
    )
    async with httpx.AsyncClient(base_url=api(), timeout=10) as http:
        for job_id in sorted(set(load.confirmed) | set(views)):
            view = views.get(job_id)
            submitted = load.confirmed.get(job_id)
            if submitted is None:
                if job_id not in load.attempted:
                    summary.unexpected.append(job_id)
                    continue
                summary.recovered += 1
                submitted = load.indeterminate.get(job_id) or load.refused[job_id]
            if view is None or view["status"] not in TERMINAL:
                status = view["status"] if view else "no view"
                summary.lost.append(f"{job_id} ({submitted.via}, {status})")
                continue
            summary.terminal += 1
            history = (await http.get(f"/jobs/{job_id}/events")).raise_for_status().json()
            _judge(summary, job_id, view, history["items"], submitted.expected)
    if summary.lost:
        summary.notes += await _dead_letters_of(api(), summary.lost)
    summary.left_in_queues = await drained(queues)
    summary.notes += load.errors[-5:]
    print(summary.report(), flush=True)
    return summary


async def _dead_letters_of(api: str, lost: list[str]) -> list[str]:
    """Where lost jobs went, when a dead letter names them (for the report)."""
    ids = {entry.split()[0] for entry in lost}
    found: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=api, timeout=10) as http:
            page = (await http.get("/dead-letters", params={"limit": 500})).json()
    except (httpx.HTTPError, ValueError):
        return found
    for letter in page.get("items", []):
        if letter.get("job_id") in ids:
            found.append(
                f"lost job {letter['job_id']}: dead letter from {letter['source_queue']}, "
                f"reason {letter['reason']}"
            )
    return found[:10]


def _judge(
    summary: Summary,
    job_id: str,
    view: dict[str, Any],
    history: list[dict[str, Any]],
    expected: str,
) -> None:
    types = [e["type"] for e in history]
    if "JobRedriven" in types:  # the documented exception: judge what followed
        history = history[len(types) - types[::-1].index("JobRedriven") :]
    ends = {TERMINAL_EVENTS[e["type"]] for e in history if e["type"] in TERMINAL_EVENTS}
    if len(ends) != 1 or ends != {view["status"]}:
        summary.conflicting.append(f"{job_id}: view {view['status']}, terminal events {ends}")
    starts = Counter(e["attempt"] for e in history if e["type"] == "JobStarted")
    twice = sorted(a for a, n in starts.items() if n > 1)
    if twice:
        summary.duplicated.append(f"{job_id}: attempt {twice} started more than once")
    if [e["type"] for e in history].count("JobSucceeded") > 1:
        summary.ran_twice += 1
    if view["status"] != expected:
        summary.wrong_outcome.append(f"{job_id}: {view['status']}, expected {expected}")


async def drained(queues: Queues, timeout: float = 30) -> dict[str, tuple[int, int]]:
    """Queues (but the operators' dead letters) with ready or unacked messages left,
    after waiting up to `timeout` s for them to empty."""
    deadline = time.monotonic() + timeout
    while True:
        left = {
            name: counts
            for name, counts in (await asyncio.to_thread(queues)).items()
            if name not in KEPT_QUEUES and counts != (0, 0)
        }
        if not left or time.monotonic() > deadline:
            return left
        await asyncio.sleep(1)


def rabbitmqctl_queues(vhost: str, node: str | None = None) -> Queues:
    """Exact ready/unacked counts from `rabbitmqctl list_queues` (read-only; the management
    API's figures are sampled every 5 s). Streams are logs that keep what they hold (the
    cancellation stream), not work left undone: they are not counted."""

    def read() -> dict[str, tuple[int, int]]:
        command = ["rabbitmqctl", *(["-n", node] if node else [])]
        command += ["list_queues", "-p", vhost, "name", "type", "messages_ready"]
        command += ["messages_unacknowledged", "-q", "--no-table-headers"]
        out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
        counts: dict[str, tuple[int, int]] = {}
        for row in out.stdout.splitlines():
            parts = row.split()
            if len(parts) == 4 and parts[1] != "stream" and (parts[2] + parts[3]).isdigit():
                counts[parts[0]] = (int(parts[2]), int(parts[3]))
        return counts

    return read


async def started_counts(api: str, job_ids: list[str]) -> dict[str, int]:
    """How many JobStarted events each job has (to show a re-submission ran nothing)."""
    counts: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=api, timeout=10) as http:
        for job_id in job_ids:
            items = (await http.get(f"/jobs/{job_id}/events")).raise_for_status().json()["items"]
            counts[job_id] = sum(1 for e in items if e["type"] == "JobStarted")
    return counts


async def run_again(amqp_url: str, api: str, load: Load, settle_seconds: float = 3) -> list[str]:
    """Publish every confirmed job again (same job_id, same body) and return the jobs that
    ran again: a duplicate submission must start nothing (contract §3.1)."""
    ids = sorted(load.confirmed)
    before = await started_counts(api, ids)
    await publish_raw(amqp_url, [json.dumps(load.confirmed[j].body).encode() for j in ids])
    marker = str(uuid.uuid4())
    await publish_raw(amqp_url, [json.dumps({"job_id": marker, "job_type": "noop"}).encode()])
    async with httpx.AsyncClient(base_url=api, timeout=10) as http:
        for _ in range(600):
            view = await http.get(f"/jobs/{marker}")
            if view.status_code == 200 and view.json()["status"] in TERMINAL:
                break
            await asyncio.sleep(0.1)
    await asyncio.sleep(settle_seconds)  # a duplicate delayed by 1 s would start by now
    after = await started_counts(api, ids)
    return [f"{j}: JobStarted {before[j]} -> {after[j]}" for j in ids if after[j] != before[j]]


async def publish_raw(amqp_url: str, bodies: list[bytes]) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("jobs.intake", ensure=False)
        for body in bodies:
            await exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key="job.submitted",
            )
