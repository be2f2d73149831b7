"""Issue 2: jobs go end to end through the real processes, broker and database."""

from __future__ import annotations

import re

import httpx
import pytest

from devtools.stack import Stack
from tests.e2e.client import events, job, publish_raw, submit, wait_for

pytestmark = pytest.mark.connected


async def test_raw_amqp_jobs_succeed_on_the_right_site(stack: Stack) -> None:
    jobs = [
        job("noop"),
        job("transcode", target_cloud="public", params={"work_ms": 20}),
        job("8k_transcode", params={"work_ms": 20}),
        job("sleep", params={"seconds": 0.3}),
    ]
    await submit(stack.env["AMQP_URL"], *jobs)
    expected_sites = ["private", "public", "public", "private"]
    for spec, site in zip(jobs, expected_sites, strict=True):
        view = await wait_for(stack.api, spec["job_id"])
        assert view["status"] == "succeeded", view
        assert view["site"] == site
        assert view["attempts"] == 1
        assert view["submitted_at"] <= view["started_at"] <= view["finished_at"]
        types = [e["type"] for e in await events(stack.api, spec["job_id"])]
        assert types[:3] == ["JobSubmitted", "JobRouted", "JobStarted"]
        assert types[-1] == "JobSucceeded"


async def test_sleep_reports_progress(stack: Stack) -> None:
    (job_id,) = await submit(stack.env["AMQP_URL"], job("sleep", params={"seconds": 0.5}))
    await wait_for(stack.api, job_id)
    progress = [e["percent"] for e in await events(stack.api, job_id) if e["type"] == "JobProgress"]
    assert progress == sorted(progress)
    assert progress[-1] == 100


async def test_post_jobs_runs_a_job(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api) as http:
        response = await http.post("/jobs", json={"job_type": "noop", "target_cloud": "public"})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "submitted"
    view = await wait_for(stack.api, body["job_id"])
    assert (view["status"], view["site"], view["rule"]) == ("succeeded", "public", "explicit")


async def test_post_jobs_answers_422_with_field_errors(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api) as http:
        bad = await http.post("/jobs", json={"job_type": "noop", "priority": 12, "extra": 1})
        residency = await http.post(
            "/jobs",
            json={
                "job_type": "noop",
                "data_classification": "confidential",
                "target_cloud": "public",
            },
        )
    assert bad.status_code == 422
    fields = {e["field"] for e in bad.json()["errors"]}
    assert {"priority", "extra"} <= fields
    assert residency.status_code == 422
    assert residency.json()["errors"][0]["field"] == "target_cloud"


async def test_malformed_message_is_dead_lettered_and_router_stays_up(stack: Stack) -> None:
    await publish_raw(stack.env["AMQP_URL"], [b"\xff not json at all"])
    (job_id,) = await submit(stack.env["AMQP_URL"], job("noop"))
    assert (await wait_for(stack.api, job_id))["status"] == "succeeded"
    async with httpx.AsyncClient(base_url=stack.api) as http:
        letters = (await http.get("/dead-letters")).json()["items"]
    malformed = [d for d in letters if d["reason"] == "malformed_json"]
    assert malformed
    assert malformed[0]["source_queue"] == "jobs.router.intake"
    assert stack.processes["router"].poll() is None


async def test_unknown_job_is_404_and_bad_id_is_422(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api) as http:
        missing = await http.get("/jobs/00000000-0000-4000-8000-000000000000")
        bad = await http.get("/jobs/not-a-uuid")
    assert missing.status_code == 404
    assert bad.status_code == 422


async def test_health_and_readiness(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api) as http:
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"database": True, "broker": True}


async def test_oversized_request_bodies_get_413(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api) as http:
        response = await http.post(
            "/jobs",
            content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["detail"]


async def test_listing_limits_and_filters_are_validated(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api) as http:
        assert (await http.get("/jobs", params={"limit": 500})).status_code == 200
        assert (await http.get("/jobs", params={"limit": 501})).status_code == 422
        assert (await http.get("/jobs", params={"status": "sleeping"})).status_code == 422
        assert (await http.get("/jobs", params={"cursor": "garbage"})).status_code == 422
        page = (await http.get("/jobs", params={"site": "public", "limit": 2})).json()
    assert all(item["site"] == "public" for item in page["items"])


async def test_api_docs_need_no_internet(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api) as http:
        page = await http.get("/docs")
        assert page.status_code == 200
        assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page.text)
        assert assets
        for asset in assets:
            assert asset.startswith("/"), f"{asset} is not served by the API itself"
            assert (await http.get(asset)).status_code == 200
        spec = (await http.get("/openapi.json")).json()
    assert {"/jobs", "/jobs/{job_id}", "/dead-letters/redrive", "/job-groups"} <= set(spec["paths"])
