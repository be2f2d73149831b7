"""Job groups on the real stack: a saga that succeeds, and one that compensates."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest

from devtools.stack import Stack

pytestmark = pytest.mark.connected


async def wait_group(
    api: str, group_id: str, statuses: set[str], timeout: float = 40
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=api) as http:
        while time.monotonic() < deadline:
            last = (await http.get(f"/job-groups/{group_id}")).json()
            if last.get("status") in statuses:
                return last
            await asyncio.sleep(0.2)
    raise AssertionError(f"group not {statuses}: {last}")


async def test_a_group_whose_jobs_all_succeed(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api) as http:
        response = await http.post(
            "/job-groups",
            json={
                "jobs": [
                    {"job_type": "noop", "compensation": {"job_type": "noop", "params": {}}},
                    {"job_type": "transcode", "params": {"work_ms": 10}, "target_cloud": "public"},
                ]
            },
        )
    assert response.status_code == 202
    body = response.json()
    group = await wait_group(stack.api, body["group_id"], {"succeeded"})
    assert [j["job_id"] for j in group["jobs"]] == body["job_ids"]
    assert group["compensations"] == []
    assert {j["group_id"] for j in group["jobs"]} == {body["group_id"]}


async def test_a_failing_member_compensates_the_succeeded_ones(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api) as http:
        response = await http.post(
            "/job-groups",
            json={
                "jobs": [
                    {
                        "job_type": "noop",
                        "compensation": {"job_type": "noop", "params": {"undo": 1}},
                    },
                    {
                        "job_type": "noop",
                        "data_classification": "confidential",
                        "compensation": {"job_type": "noop"},
                    },
                    {"job_type": "noop"},  # succeeded, but nothing to undo
                    {"job_type": "fail", "max_attempts": 1, "compensation": {"job_type": "noop"}},
                ]
            },
        )
        body = response.json()
        group = await wait_group(stack.api, body["group_id"], {"compensated", "failed"})
        assert group["status"] == "compensated"
        first, confidential, _, failed = body["job_ids"]
        assert [j["status"] for j in group["jobs"]] == [
            "succeeded",
            "succeeded",
            "succeeded",
            "dead_lettered",
        ]
        compensations = {c["compensates"]: c for c in group["compensations"]}
        assert set(compensations) == {first, confidential}
        assert all(c["status"] == "succeeded" for c in compensations.values())
        assert compensations[first]["params"] == {"undo": 1}
        assert compensations[confidential]["site"] == "private"
        assert compensations[confidential]["data_classification"] == "confidential"
        assert failed not in compensations


async def test_group_validation(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api) as http:
        empty = await http.post("/job-groups", json={"jobs": []})
        residency = await http.post(
            "/job-groups",
            json={
                "jobs": [
                    {"job_type": "noop"},
                    {
                        "job_type": "noop",
                        "data_classification": "confidential",
                        "target_cloud": "public",
                    },
                ]
            },
        )
        missing = await http.get("/job-groups/00000000-0000-4000-8000-000000000000")
    assert empty.status_code == 422
    assert residency.status_code == 422
    assert residency.json()["errors"][0]["field"] == "jobs.1.target_cloud"
    assert missing.status_code == 404


async def test_a_job_already_in_a_group_is_refused_with_409_and_nothing_recorded(
    stack: Stack,
) -> None:
    """A job belongs to one group: a second group naming it is a conflict (409, not a 500
    from the database's unique key), and none of the second group is kept or submitted."""
    shared, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=stack.api) as http:
        first = await http.post(
            "/job-groups", json={"jobs": [{"job_type": "noop", "job_id": shared}]}
        )
        second = await http.post(
            "/job-groups",
            json={
                "jobs": [
                    {"job_type": "noop", "job_id": fresh},
                    {"job_type": "noop", "job_id": shared},
                ]
            },
        )
        assert first.status_code == 202
        assert second.status_code == 409, second.text
        assert shared in second.json()["detail"]
        await wait_group(stack.api, first.json()["group_id"], {"succeeded"})
        await asyncio.sleep(1)  # a member of the refused group would be submitted by now
        assert (await http.get(f"/jobs/{fresh}")).status_code == 404


async def test_a_group_is_readable_before_its_jobs_are_seen(stack: Stack) -> None:
    stack.stop("router")  # members stay unseen by the status service
    try:
        async with httpx.AsyncClient(base_url=stack.api) as http:
            body = (await http.post("/job-groups", json={"jobs": [{"job_type": "noop"}]})).json()
            group = (await http.get(f"/job-groups/{body['group_id']}")).json()
    finally:
        stack.start("router")
    assert group["status"] == "running"
    assert [j["status"] for j in group["jobs"]] == ["submitted"]
    await wait_group(stack.api, body["group_id"], {"succeeded"})
