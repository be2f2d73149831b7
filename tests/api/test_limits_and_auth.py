"""Body limits however a body is sent, deep JSON, and auth on every data path
(contract section 5), against the status service as a real process."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from devtools.stack import Stack
from services.status.bootstrap import create_app
from shared.settings import StatusSettings
from tests.api.conftest import ADMIN, JSON, READ, client, publish_event, submitted_event

pytestmark = pytest.mark.connected
KIB = 1024


async def chunked(body: bytes, size: int = 16 * KIB) -> AsyncIterator[bytes]:
    """A body sent in chunks with no Content-Length (Transfer-Encoding: chunked)."""
    for i in range(0, len(body), size):
        yield body[i : i + size]


def job_body(params_bytes: int) -> bytes:
    return json.dumps({"job_type": "noop", "params": {"blob": "x" * params_bytes}}).encode()


def nested(depth: int) -> bytes:
    return b'{"job_type": "noop", "params": {"a": ' + b"[" * depth + b"]" * depth + b"}}"


async def test_post_jobs_over_256_kib_is_413_with_or_without_content_length(status: Stack) -> None:
    async with client(status) as http:
        sized = await http.post("/jobs", content=job_body(300 * KIB), headers=JSON)
        assert sized.status_code == 413
        streamed = await http.post(
            "/jobs",
            content=chunked(job_body(300 * KIB)),
            headers={"content-type": "application/json"},
        )
        assert streamed.status_code == 413
        assert "256 KiB" in streamed.json()["detail"]
        small = await http.post("/jobs", content=chunked(job_body(200 * KIB)), headers=JSON)
        assert small.status_code == 202  # under the limit


async def test_any_body_over_1_mib_is_413_even_chunked(status: Stack) -> None:
    group = json.dumps({"jobs": [{"job_type": "noop", "params": {"b": "x" * 2_000_000}}]})
    async with client(status) as http:
        for path in ("/job-groups", "/dead-letters/redrive", "/jobs/x/cancel", "/nowhere"):
            response = await http.post(path, content=chunked(group.encode()), headers=JSON)
            assert response.status_code == 413, path
        empty = json.dumps({"jobs": []}).encode()
        under = await http.post("/job-groups", content=chunked(empty), headers=JSON)
        assert under.status_code == 422


async def test_deep_json_nesting_is_a_clean_422(status: Stack) -> None:
    async with client(status) as http:
        for depth in (65, 1000, 100_000):
            response = await http.post("/jobs", content=nested(depth), headers=JSON)
            assert response.status_code == 422, depth
            assert "nested" in response.json()["detail"]
        group = b'{"jobs": [{"job_type": "noop", "params": ' + b"[" * 5000 + b"]" * 5000 + b"}]}"
        assert (await http.post("/job-groups", content=group, headers=JSON)).status_code == 422
        tricky = json.dumps({"job_type": "noop", "params": {"s": "[" * 5000}}).encode()
        answer = await http.post("/jobs", content=tricky, headers=JSON)
        assert answer.status_code == 202, answer.text  # brackets in a string do not count


async def test_every_data_path_needs_a_token(status: Stack) -> None:
    paths = ("/docs", "/openapi.json", "/redoc", "/nowhere", "/jobs", "/stats", "/dead-letters")
    async with client(status, None) as anonymous, client(status, "wrong") as wrong:
        for http in (anonymous, wrong):
            for path in paths:
                response = await http.get(path)
                assert response.status_code == 401, path
                assert response.headers["www-authenticate"] == "Bearer"
            assert (await http.post("/jobs", json={"job_type": "noop"})).status_code == 401
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await anonymous.get(path)).status_code == 200, path
        for path in ("/ui", "/ui/static/app.js"):  # the dashboard's shell and files: public
            assert (await anonymous.get(path)).status_code != 401, path
    async with client(status, READ) as reader:
        for path in ("/docs", "/openapi.json", "/jobs", "/stats", "/dead-letters"):
            assert (await reader.get(path)).status_code == 200, path
        assert (await reader.get("/nowhere")).status_code == 404


async def test_operator_actions_need_the_admin_token(status: Stack, amqp_url: str) -> None:
    event = submitted_event()
    await publish_event(amqp_url, event)
    job_id = event["job_id"]
    async with client(status, READ) as reader:
        for _ in range(100):
            if (await reader.get(f"/jobs/{job_id}")).status_code == 200:
                break
            await asyncio.sleep(0.1)
    cancel, redrive = f"/jobs/{job_id}/cancel", "/dead-letters/redrive"
    async with client(status, None) as anonymous, client(status, READ) as reader:
        assert (await anonymous.post(cancel)).status_code == 401
        assert (await anonymous.post(redrive, json={"ids": []})).status_code == 401
        assert (await reader.post(cancel)).status_code == 403
        assert (await reader.post(redrive, json={"ids": []})).status_code == 403
    async with client(status, ADMIN) as admin:
        assert (await admin.post(redrive, json={"ids": []})).status_code == 202
        assert (await admin.post(cancel)).status_code == 202
        assert (await admin.get(f"/jobs/{job_id}")).json()["status"] == "cancelled"
        assert (await admin.post(cancel)).status_code == 409


async def test_with_only_api_token_nobody_may_operate() -> None:
    """Contract: ADMIN_TOKEN unset means no token can cancel or redrive (v1 let the
    API token operate then)."""
    app = create_app(StatusSettings(API_TOKEN=READ))  # type: ignore[call-arg]
    transport = httpx.ASGITransport(app=app)  # routes refuse before they need resources
    headers = {"Authorization": f"Bearer {READ}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as http:
        job = "/jobs/00000000-0000-4000-8000-000000000000/cancel"
        assert (await http.post(job)).status_code == 403
        assert (await http.post("/dead-letters/redrive", json={"ids": []})).status_code == 403
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as anonymous:
        assert (await anonymous.post(job)).status_code == 401
        assert (await anonymous.get("/openapi.json")).status_code == 401


async def test_job_listing_filters_by_parent_and_schedule(status: Stack, amqp_url: str) -> None:
    """Neither filter matches a job submitted without it (the columns come with child
    jobs and schedules; a store without them holds no such job); a non-UUID is 422."""
    event = submitted_event()
    await publish_event(amqp_url, event)
    async with client(status) as http:
        for _ in range(100):
            if (await http.get(f"/jobs/{event['job_id']}")).status_code == 200:
                break
            await asyncio.sleep(0.1)
        listed = {j["job_id"] for j in (await http.get("/jobs")).json()["items"]}
        assert event["job_id"] in listed
        for name in ("parent_id", "schedule_id"):
            other = await http.get("/jobs", params={name: str(uuid.uuid4())})
            assert other.status_code == 200
            assert event["job_id"] not in {j["job_id"] for j in other.json()["items"]}
            assert (await http.get("/jobs", params={name: "nope"})).status_code == 422
        view = (await http.get(f"/jobs/{event['job_id']}")).json()
        assert view["parent_id"] is None
        assert view["schedule_id"] is None
