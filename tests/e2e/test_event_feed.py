"""Issue 24, bulk submission and the global event feed (contract v1.2 §5.2) on the real
stack: two status replicas (their projectors commit concurrently), the router and both
workers, tokens set.

POST /jobs/batch takes each job as POST /jobs would; GET /events and /events/stream hand
out every recorded event once along their cursor; hybridq submit-many."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.stack import Stack
from tests.e2e.client import TERMINAL

pytestmark = pytest.mark.connected
READ, ADMIN = "feed-read-token", "feed-admin-token"


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {
        **stack_env,
        "API_TOKEN": READ,
        "ADMIN_TOKEN": ADMIN,
        "STREAM_HEARTBEAT_SECONDS": "1",
        "STREAM_POLL_SECONDS": "0.1",
    }
    stack = Stack(env, tmp_path_factory.mktemp("feed-logs"))
    stack.start("router", "public_worker", "private_worker")
    stack.start("status", replicas=2)
    try:
        stack.wait_ready()
        yield stack
    finally:
        assert set(stack.stop().values()) <= {0}


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {READ}"}
    async with httpx.AsyncClient(base_url=stack.api, headers=headers, timeout=30) as client:
        yield client


def noop(**fields: Any) -> dict[str, Any]:
    return {"job_type": "noop", **fields}


async def all_visible(http: httpx.AsyncClient, ids: list[str], timeout: float = 120) -> None:
    """Every job answers GET /jobs/{id} 200 within `timeout`."""
    left = set(ids)
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        for chunk in [sorted(left)[i : i + 50] for i in range(0, len(left), 50)]:
            answers = await asyncio.gather(*(http.get(f"/jobs/{j}") for j in chunk))
            left -= {j for j, a in zip(chunk, answers, strict=True) if a.status_code == 200}
        await asyncio.sleep(0.2)
    assert not left, f"{len(left)} of {len(ids)} jobs never visible, e.g. {sorted(left)[:3]}"


async def all_terminal(http: httpx.AsyncClient, ids: list[str], timeout: float = 300) -> None:
    left = set(ids)
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        page = await http.get("/stats")
        page.raise_for_status()
        for chunk in [sorted(left)[i : i + 50] for i in range(0, len(left), 50)]:
            answers = await asyncio.gather(*(http.get(f"/jobs/{j}") for j in chunk))
            left -= {
                j
                for j, a in zip(chunk, answers, strict=True)
                if a.status_code == 200 and a.json()["status"] in TERMINAL
            }
        await asyncio.sleep(0.5)
    assert not left, f"{len(left)} of {len(ids)} jobs not terminal in {timeout}s"


async def feed_now(http: httpx.AsyncClient) -> str:
    """The cursor after every event recorded so far."""
    cursor: str | None = None
    while True:
        page = (await http.get("/events", params={"limit": 1000, "after": cursor or ""})).json()
        cursor = page["next_cursor"]
        if len(page["items"]) < 1000:
            return str(cursor)


async def histories(http: httpx.AsyncClient, ids: list[str]) -> dict[str, list[str]]:
    """Each job's event ids from GET /jobs/{id}/events."""
    found: dict[str, list[str]] = {}
    for i in range(0, len(ids), 50):
        chunk = ids[i : i + 50]
        answers = await asyncio.gather(*(http.get(f"/jobs/{j}/events") for j in chunk))
        for job_id, answer in zip(chunk, answers, strict=True):
            answer.raise_for_status()
            found[job_id] = [e["event_id"] for e in answer.json()["items"]]
    return found


# -- POST /jobs/batch ----------------------------------------------------------------------
async def test_a_batch_of_1000_jobs_is_submitted_and_each_visible(
    http: httpx.AsyncClient,
) -> None:
    started = time.monotonic()
    answer = await http.post("/jobs/batch", json={"jobs": [noop() for _ in range(1000)]})
    took = time.monotonic() - started
    assert answer.status_code == 202, answer.text
    items = answer.json()["items"]
    assert [i["index"] for i in items] == list(range(1000))
    assert {i["status"] for i in items} == {"submitted"}
    ids = [i["job_id"] for i in items]
    assert len(set(ids)) == 1000
    await all_visible(http, ids)
    print(f"1,000 jobs confirmed in one request in {took:.2f} s")


async def test_a_mixed_batch_is_taken_job_by_job_as_post_jobs_would(
    http: httpx.AsyncClient,
) -> None:
    given = str(uuid.uuid4())
    jobs: list[Any] = [
        noop(),
        noop(max_attempts="3"),  # strict types: refused, naming the field
        noop(colour="blue"),  # unknown field
        noop(data_classification="confidential", target_cloud="public"),  # residency
        {"job_type": "no_such_handler_anywhere"},  # no site has a handler
        noop(params={"blob": "x" * (256 * 1024)}),  # over 256 KiB as a message
        noop(delay_seconds=5, not_before="2030-01-01T00:00:00+00:00"),  # both delays
        7,  # not a job at all
        noop(job_id=given, priority=9),
    ]
    answer = await http.post("/jobs/batch", json={"jobs": jobs})
    assert answer.status_code == 202, answer.text
    items = answer.json()["items"]
    assert [i["index"] for i in items] == list(range(len(jobs)))
    statuses = [i["status"] for i in items]
    assert statuses == ["submitted"] + ["rejected"] * 7 + ["submitted"]
    assert items[-1]["job_id"] == given
    # each job alone through POST /jobs: accepted or refused the same, the same fields
    for job, item in zip(jobs, items, strict=True):
        alone = await http.post("/jobs", json=job)
        if item["status"] == "submitted":
            assert alone.status_code == 202, (job, alone.text)
            continue
        assert alone.status_code in (413, 422), (job, alone.text)
        fields = {e["field"] for e in item["errors"]}
        assert all(e["message"] for e in item["errors"])
        if alone.status_code == 422:  # POST /jobs names the same fields ("(job)": all of it)
            alone_fields = {e["field"] for e in alone.json()["errors"]}
            assert fields == {"(job)" if f == "(body)" else f for f in alone_fields}, (job, item)
    assert {e["field"] for e in items[1]["errors"]} == {"max_attempts"}
    assert {e["field"] for e in items[3]["errors"]} == {"target_cloud"}
    await all_visible(http, [items[0]["job_id"], given])


async def test_a_batch_within_the_limits(http: httpx.AsyncClient, stack: Stack) -> None:
    """1 to 1,000 jobs; the body at most 8 MiB (however sent); auth as POST /jobs."""
    for count in (0, 1001):
        answer = await http.post("/jobs/batch", json={"jobs": [noop()] * count})
        assert answer.status_code == 422, count
        assert answer.json()["errors"][0]["field"] == "jobs"
    assert (await http.post("/jobs/batch", json={"job": [noop()]})).status_code == 422
    big = {"jobs": [noop(params={"b": "x" * 200_000}) for _ in range(20)]}  # ~4 MiB: taken
    answer = await http.post("/jobs/batch", json=big)
    assert answer.status_code == 202, answer.text[:300]
    assert {i["status"] for i in answer.json()["items"]} == {"submitted"}
    huge = json.dumps({"jobs": [noop(params={"b": "x" * 200_000}) for _ in range(45)]})
    assert len(huge) > 8 * 1024 * 1024

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: sent chunked
        yield huge.encode()

    assert (await http.post("/jobs/batch", content=huge)).status_code == 413
    assert (await http.post("/jobs/batch", content=chunks())).status_code == 413
    async with httpx.AsyncClient(base_url=stack.api) as anonymous:
        assert (await anonymous.post("/jobs/batch", json={"jobs": [noop()]})).status_code == 401
    spec = (await http.get("/openapi.json")).json()["paths"]
    assert set(spec["/jobs/batch"]["post"]["responses"]) >= {"202", "401", "413", "422", "503"}
    assert set(spec["/events"]["get"]["responses"]) >= {"200", "401", "422", "503"}
    stream = spec["/events/stream"]["get"]["responses"]
    assert "text/event-stream" in stream["200"]["content"]
    assert "429" in stream


# -- GET /events -----------------------------------------------------------------------
async def test_a_reader_following_the_feed_sees_every_event_once_while_2000_jobs_run(
    http: httpx.AsyncClient,
) -> None:
    """Two status replicas project at once while 2,000 jobs run; a reader follows
    GET /events all along. At the end its events of those jobs are exactly the jobs'
    histories (GET /jobs/{id}/events), none missing, none twice."""
    start = await feed_now(http)
    read: list[dict[str, Any]] = []
    done = asyncio.Event()

    async def reader() -> None:
        cursor = start
        while True:
            finished = done.is_set()
            page = (await http.get("/events", params={"after": cursor, "limit": 250})).json()
            read.extend(page["items"])
            cursor = page["next_cursor"]
            if finished and len(page["items"]) < 250:
                return
            await asyncio.sleep(0.05)

    reading = asyncio.create_task(reader())
    ids: list[str] = []
    for _ in range(2):
        jobs = [noop() for _ in range(1000)]
        answer = await http.post("/jobs/batch", json={"jobs": jobs})
        assert answer.status_code == 202, answer.text
        ids += [i["job_id"] for i in answer.json()["items"]]
    await all_terminal(http, ids)
    await asyncio.sleep(1)  # the last events of the last jobs are recorded
    done.set()
    await reading
    mine = set(ids)
    seen = [e["event_id"] for e in read if e["job_id"] in mine]
    assert len(seen) == len(set(seen)), f"{len(seen) - len(set(seen))} events read twice"
    expected = {e for history in (await histories(http, ids)).values() for e in history}
    assert len(expected) >= 2000 * 3  # submitted, routed, started, succeeded...
    assert set(seen) == expected, f"{len(expected - set(seen))} events never read"


async def test_the_feed_filters_by_type_and_job_type(http: httpx.AsyncClient) -> None:
    start = await feed_now(http)
    answer = await http.post(
        "/jobs/batch", json={"jobs": [noop(), {"job_type": "sleep", "params": {"seconds": 0}}]}
    )
    ids = [i["job_id"] for i in answer.json()["items"]]
    await all_terminal(http, ids)
    await asyncio.sleep(1)
    params: dict[str, Any] = {"after": start, "type": "JobSucceeded,JobSubmitted"}
    page = (await http.get("/events", params=params)).json()
    mine = [e for e in page["items"] if e["job_id"] in ids]
    assert sorted(e["type"] for e in mine) == ["JobSubmitted"] * 2 + ["JobSucceeded"] * 2
    page = (await http.get("/events", params={"after": start, "job_type": "sleep"})).json()
    assert {e["job_id"] for e in page["items"]} == {ids[1]}
    assert {e["type"] for e in page["items"]} >= {"JobSubmitted", "JobStarted", "JobSucceeded"}
    for bad in ({"type": "JobExploded"}, {"after": "nonsense"}, {"limit": 1001}):
        assert (await http.get("/events", params=bad)).status_code == 422, bad


# -- GET /events/stream --------------------------------------------------------------------
async def read_stream(
    http: httpx.AsyncClient, headers: dict[str, str], params: dict[str, str], count: int
) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """Up to `count` events (id, event) from one connection, then hang up (also after 3 s
    without an event: heartbeats come every second); and the comment lines (heartbeats)
    seen meanwhile."""
    got: list[tuple[str, dict[str, Any]]] = []
    comments: list[str] = []
    event_id = ""
    news = time.monotonic()
    timeout = httpx.Timeout(10, read=5)
    try:
        async with http.stream(
            "GET", "/events/stream", params=params, headers=headers, timeout=timeout
        ) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    comments.append(line)
                    if time.monotonic() - news > 3:
                        break
                elif line.startswith("id:"):
                    event_id = line[3:].strip()
                elif line.startswith("data:"):
                    got.append((event_id, json.loads(line[5:])))
                    news = time.monotonic()
                    if len(got) >= count:
                        break
    except (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError):
        pass  # the connection dropped: the caller resumes with Last-Event-ID
    return got, comments


async def test_a_stream_resumed_with_last_event_id_loses_and_repeats_nothing(
    http: httpx.AsyncClient,
) -> None:
    """While 600 jobs run, a client reads the stream in pieces of 137 events, hanging up
    after each and coming back with Last-Event-ID; what it got is GET /events' list from
    the same start, in the same order."""
    start = await feed_now(http)
    answer = await http.post("/jobs/batch", json={"jobs": [noop() for _ in range(600)]})
    ids = [i["job_id"] for i in answer.json()["items"]]
    waiting = asyncio.create_task(all_terminal(http, ids))
    got: list[tuple[str, dict[str, Any]]] = []
    last = ""
    quiet = 0
    while quiet < 2:  # until two connections in a row bring nothing more
        headers = {"Last-Event-ID": last} if last else {}
        piece, _ = await read_stream(http, headers, {"after": start}, 137)
        got += piece
        last = piece[-1][0] if piece else last
        quiet = 0 if piece or not waiting.done() else quiet + 1
    await waiting
    pages: list[dict[str, Any]] = []
    cursor = start
    while True:
        page = (await http.get("/events", params={"after": cursor, "limit": 1000})).json()
        pages += page["items"]
        cursor = page["next_cursor"]
        if len(page["items"]) < 1000:
            break
    streamed = [e["event_id"] for _, e in got]
    assert len(streamed) == len(set(streamed)), "an event came twice"
    assert streamed == [e["event_id"] for e in pages]
    assert {e["job_id"] for _, e in got} >= set(ids)


async def test_a_stream_sends_heartbeats_and_keeps_to_its_filters(
    http: httpx.AsyncClient,
) -> None:
    start = await feed_now(http)
    params = {"after": start, "type": "JobRedriven"}  # nothing of the kind happens here
    got, comments = await read_stream(http, {}, params, 1)
    assert got == []
    assert comments, "no heartbeat while idle"
    bad = await http.get("/events/stream", headers={"Last-Event-ID": "garbage"})
    assert bad.status_code == 422


# -- hybridq submit-many ---------------------------------------------------------------------
def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HYBRIDQ_API": stack.api, "HYBRIDQ_TOKEN": READ}
    return subprocess.run(
        [sys.executable, "-m", "hybridq_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_cli_submit_many(stack: Stack, http: httpx.AsyncClient, tmp_path: Path) -> None:
    """1,503 lines (two requests): three refused, reported by line; exit 1. A file of good
    lines: exit 0. Each submitted job is visible under the job_id printed."""
    lines = [json.dumps(noop(params={"n": n})) for n in range(1500)]
    lines.insert(10, "{not json")
    lines.insert(1200, json.dumps(noop(max_attempts=99)))
    lines.insert(1300, "")  # blank lines are skipped
    lines.append(json.dumps({"job_type": "noop", "colour": "red"}))
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    done = cli(stack, "submit-many", str(path), "--json")
    assert done.returncode == 1, done.stderr
    outcomes = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(outcomes) == 1503
    refused = {o["line"]: o for o in outcomes if o["status"] == "rejected"}
    assert set(refused) == {11, 1201, 1504}
    assert refused[1201]["errors"][0]["field"] == "max_attempts"
    assert refused[11]["errors"][0]["field"] == "(line)"
    ids = [o["job_id"] for o in outcomes if o["status"] == "submitted"]
    assert len(set(ids)) == 1500
    await all_visible(http, ids)
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(noop()) + "\n" + json.dumps(noop(priority=7)) + "\n")
    done = cli(stack, "submit-many", str(good))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "2 submitted, 0 refused"
    assert cli(stack, "submit-many", str(tmp_path / "missing.jsonl")).returncode == 2
