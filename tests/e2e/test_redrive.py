"""Redrive at most once per dead letter, even under concurrent requests, and a `site`
override honoured only where residency allows -- asserted from the workers' own
JobStarted events (where and how often the job really ran), on the real stack."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from devtools.stack import Stack
from tests.e2e.client import events, job, submit, wait_for

pytestmark = pytest.mark.connected


async def dead_letter_of(stack: Stack, **fields: Any) -> tuple[str, str]:
    """Submit a job that fails once and is dead-lettered; its id and its dead letter's."""
    (job_id,) = await submit(stack.env["AMQP_URL"], job("fail", max_attempts=1, **fields))
    assert (await wait_for(stack.api, job_id))["status"] == "dead_lettered"
    async with httpx.AsyncClient(base_url=stack.api, timeout=10) as http:
        for _ in range(50):
            page = (await http.get("/dead-letters", params={"limit": 500})).json()["items"]
            letters = [d["id"] for d in page if d["job_id"] == job_id]
            if letters:
                return job_id, letters[0]
            await asyncio.sleep(0.1)
    raise AssertionError(f"no dead letter listed for {job_id}")


async def starts(stack: Stack, job_id: str) -> list[tuple[int, str]]:
    return [
        (e["attempt"], e["site"])
        for e in await events(stack.api, job_id)
        if e["type"] == "JobStarted"
    ]


async def settle(stack: Stack, job_id: str, attempts: int) -> None:
    """Wait until the job has ended its `attempts`-th attempt, plus time for strays."""
    for _ in range(150):
        view = await wait_for(stack.api, job_id)
        if view["attempts"] >= attempts and view["status"] == "dead_lettered":
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.5)  # a second dispatch would have started by now


async def test_concurrent_redrives_of_one_dead_letter_run_the_job_once(stack: Stack) -> None:
    job_id, letter = await dead_letter_of(stack)
    async with httpx.AsyncClient(base_url=stack.api, timeout=20) as http:
        answers = await asyncio.gather(
            *(http.post("/dead-letters/redrive", json={"ids": [letter]}) for _ in range(10))
        )
    assert {a.status_code for a in answers} == {202}
    assert sum(a.json()["redriven"] for a in answers) == 1
    await settle(stack, job_id, attempts=2)
    assert await starts(stack, job_id) == [(1, "private"), (2, "private")]
    history = await events(stack.api, job_id)
    assert [e["dead_letter_id"] for e in history if e["type"] == "JobRedriven"] == [letter]


async def test_redrive_with_a_site_runs_there(stack: Stack) -> None:
    job_id, letter = await dead_letter_of(stack)
    async with httpx.AsyncClient(base_url=stack.api, timeout=20) as http:
        answer = await http.post("/dead-letters/redrive", json={"ids": [letter], "site": "public"})
    assert answer.json() == {"redriven": 1, "skipped": []}
    await settle(stack, job_id, attempts=2)
    assert await starts(stack, job_id) == [(1, "private"), (2, "public")]


async def test_redrive_to_public_is_refused_for_a_confidential_job(stack: Stack) -> None:
    job_id, letter = await dead_letter_of(stack, data_classification="confidential")
    async with httpx.AsyncClient(base_url=stack.api, timeout=20) as http:
        answer = await http.post("/dead-letters/redrive", json={"ids": [letter], "site": "public"})
        assert answer.status_code == 202
        assert answer.json()["redriven"] == 0
        assert "residency" in answer.json()["skipped"][0]["why"]
        await asyncio.sleep(1.5)
        still_open = (await http.get("/dead-letters", params={"limit": 500})).json()["items"]
    assert letter in {d["id"] for d in still_open}
    assert await starts(stack, job_id) == [(1, "private")]
