"""Hostile content on the real broker: dead-lettered with a reason, listed, settled.

Every body and header class of contract section 3.1 goes to the status service's two
consumers; afterwards each one is listed as a dead letter, the queues are empty with
nothing unacked, and an ordinary event sent after them was projected.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import aio_pika
import httpx
import pytest
from sqlalchemy import select

from devtools import environment
from services.status.adapters import queries
from services.status.adapters.tables import dead_letters
from shared import topology
from shared.contracts import events as ev
from shared.dead_letters import DEAD_LETTER_ID_HEADER, JOB_ID_HEADER, REASON_HEADER
from shared.identity import WorkerUsers
from tests.integration.ingest_harness import (
    eventually,
    publish_raw,
    ready_after_stop,
    settled,
    status_consumers,
    vhost_of,
)

pytestmark = pytest.mark.connected

DEEP = b"[" * 200_000 + b"]" * 200_000
HUGE = b'{"job_id": "' + b"x" * (3 << 20) + b'"}'
IMITATION = {
    REASON_HEADER: "max_attempts\x00",
    JOB_ID_HEADER: "not-a-uuid",
    DEAD_LETTER_ID_HEADER: "\x00",
    "x-hybridq-dead-lettered-at": "not a time",
    "x-death": "not a list",
}


def hostile_bodies(job_id: uuid.UUID) -> list[bytes]:
    nul_event = json.dumps({"type": "JobStarted", "job_id": f"{job_id}\x00", "attempt": 1})
    return [b"not json", b"\xff\xfe\x00 not utf-8", DEEP, HUGE, nul_event.encode()]


async def test_hostile_messages_are_listed_and_settled(amqp_url: str, database_url: str) -> None:
    job_id, ordinary = uuid.uuid4(), uuid.uuid4()
    marker = uuid.uuid4().hex
    async with status_consumers(amqp_url, database_url) as status:
        bodies = hostile_bodies(job_id)  # each to both consumers
        await publish_raw(
            amqp_url,
            topology.EVENTS.name,
            "job.started",
            *(aio_pika.Message(b, headers={"x-test": marker}) for b in bodies),
            aio_pika.Message(b"{}", headers={**IMITATION, "x-test": marker}),
        )
        await publish_raw(
            amqp_url,
            topology.DEAD_LETTER_EXCHANGE.name,
            "",
            *(aio_pika.Message(b, headers={**IMITATION, "x-test": marker}) for b in bodies),
        )
        # a job whose submitted params hold a NUL keeps its (sanitized) submitted fields
        await status.bus.event(
            ev.JobSubmittedEvent(job_id=job_id, job_type="noop", params={"p\x00": "v\x00"})
        )
        await status.bus.event(ev.JobSubmittedEvent(job_id=ordinary, job_type="noop"))

        async def ordinary_projected() -> bool:
            return await queries.get_job(status.engine, ordinary) is not None

        await eventually(ordinary_projected, 20, "other events keep flowing")

        async def all_listed() -> list[dict[str, object]]:
            rows, _ = await queries.list_dead_letters(status.engine, limit=500)
            return rows if len(rows) >= 2 * len(bodies) + 1 else []

        rows = await eventually(all_listed, 30, "every hostile message listed")
        await eventually(
            lambda: settled(
                amqp_url,
                topology.STATUS_EVENTS.name,
                topology.STATUS_DEAD_LETTERS.name,
            ),
            30,
            "status queues empty, nothing unacked",
        )
        view = await queries.get_job(status.engine, job_id)
        async with status.engine.connect() as conn:
            raw = {r.raw_body for r in await conn.execute(select(dead_letters.c.raw_body))}
    queues = (topology.STATUS_EVENTS, topology.STATUS_DEAD_LETTERS)
    assert await ready_after_stop(amqp_url, *(q.name for q in queues)) == {
        q.name: 0 for q in queues
    }
    bodies = hostile_bodies(job_id)
    reasons = sorted(str(r["reason"]) for r in rows)
    assert reasons.count("malformed_json") == 3  # not JSON, not UTF-8, too deep
    assert reasons.count("oversize") == 1
    assert reasons.count("schema") == 2  # a NUL in the job_id; imitation headers on "{}"
    assert reasons.count("max_attempts\ufffd") == len(bodies)  # the imitated reason, stored
    assert all(r["reason"] for r in rows)
    assert all("\x00" not in str(r["body"]) for r in rows)
    assert b"\xff\xfe\x00 not utf-8" in raw  # the exact bytes are kept beside the text
    assert view is not None
    assert view.job_type == "noop"
    assert view.params == {"p\ufffd": "v\ufffd"}
    assert view.status == "submitted"  # the imitation headers ended nothing
    assert datetime.now(UTC) > view.submitted_at


@pytest.fixture
def worker_user(amqp_url: str) -> Iterator[str]:
    """A broker user of this test's own that the status service takes for a public worker
    (a unique name: the machine's broker is shared)."""
    name, password = f"hybridq_test_worker_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    vhost = quote(vhost_of(amqp_url), safe="")
    with httpx.Client(base_url=environment.MANAGEMENT, auth=environment.ADMIN) as http:
        http.put(f"/api/users/{name}", json={"password": password, "tags": ""}).raise_for_status()
        http.put(
            f"/api/permissions/{vhost}/{name}",
            json={"configure": ".*", "write": ".*", "read": ".*"},
        ).raise_for_status()
    yield f"amqp://{name}:{password}@127.0.0.1:5672/{vhost}"
    with httpx.Client(base_url=environment.MANAGEMENT, auth=environment.ADMIN) as http:
        http.delete(f"/api/users/{name}")


async def test_a_worker_cannot_report_on_another_sites_job(
    amqp_url: str, database_url: str, worker_user: str
) -> None:
    private, public = uuid.uuid4(), uuid.uuid4()
    user = urlsplit(worker_user).username
    # the status service is told the name, as PUBLIC_WORKER_USER would (shared/settings.py)
    workers = WorkerUsers(public=str(user))
    async with status_consumers(amqp_url, database_url, workers=workers) as status:
        for job_id, site in ((private, "private"), (public, "public")):
            await status.bus.event(ev.JobSubmittedEvent(job_id=job_id, job_type="noop"))
            await status.bus.event(
                ev.JobRouted(job_id=job_id, site=site, rule="r", reason="r", priority=5)  # type: ignore[arg-type]
            )

        async def routed() -> bool:
            views = [await queries.get_job(status.engine, j) for j in (private, public)]
            return all(v is not None and v.status == "queued" for v in views)

        await eventually(routed, 10, "both routed")
        forged = ev.JobSucceeded(job_id=private, site="public", attempt=1, duration_seconds=1)  # type: ignore[arg-type]
        honest = ev.JobSucceeded(job_id=public, site="public", attempt=1, duration_seconds=1)  # type: ignore[arg-type]
        await publish_raw(
            worker_user,
            topology.EVENTS.name,
            "job.succeeded",
            *(
                aio_pika.Message(e.model_dump_json().encode(), user_id=user)
                for e in (forged, honest)
            ),
        )

        async def honest_projected() -> bool:
            view = await queries.get_job(status.engine, public)
            return view is not None and view.status == "succeeded"

        await eventually(honest_projected, 10, "the honest report projected")

        async def forbidden() -> list[dict[str, object]]:
            rows, _ = await queries.list_dead_letters(status.engine, limit=100)
            return [r for r in rows if r["job_id"] == private and r["reason"] == "forbidden"]

        await eventually(forbidden, 10, "the forgery dead-lettered as forbidden")
        view = await queries.get_job(status.engine, private)
    assert view is not None
    assert view.status == "queued"
