"""Bounded live streams (contract section 5): a cap answered with 429 while the
projection keeps working, an unknown job's stream ends, an idle stream ends."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from devtools.stack import Stack
from tests.api.conftest import MAX_STREAMS, client, publish_event, submitted_event

pytestmark = pytest.mark.connected


async def known_job(status: Stack, amqp_url: str) -> str:
    """A job the projection has seen (submitted, never run: no router here)."""
    event = submitted_event()
    await publish_event(amqp_url, event)
    async with client(status) as http:
        for _ in range(100):
            if (await http.get(f"/jobs/{event['job_id']}")).status_code == 200:
                return str(event["job_id"])
            await asyncio.sleep(0.1)
    raise AssertionError("the projection did not show the job")


async def read_until_end(response: httpx.Response) -> dict[str, Any]:
    event = ""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == "end":
            ended: dict[str, Any] = json.loads(line[5:])
            return ended
    raise AssertionError("the stream closed without an end event")


async def test_open_streams_are_capped_and_the_projection_keeps_working(
    status: Stack, amqp_url: str
) -> None:
    job_id = await known_job(status, amqp_url)
    path = f"/jobs/{job_id}/stream"
    async with client(status, timeout=30) as http:
        async with AsyncExitStack() as streams:
            for _ in range(MAX_STREAMS):
                response = await streams.enter_async_context(http.stream("GET", path))
                assert response.status_code == 200
            extra = await http.get(path)
            assert extra.status_code == 429
            assert str(MAX_STREAMS) in extra.json()["detail"]
            await known_job(status, amqp_url)  # events still projected while the cap is hit
        for _ in range(50):  # the slots come back once the clients are gone
            async with http.stream("GET", path) as again:
                if again.status_code == 200:
                    break
            await asyncio.sleep(0.1)
        assert again.status_code == 200


async def test_an_unknown_jobs_stream_ends_promptly(status: Stack) -> None:
    started = time.monotonic()
    async with (
        client(status, timeout=30) as http,
        http.stream("GET", f"/jobs/{uuid.uuid4()}/stream") as response,
    ):
        assert response.status_code == 200
        assert await read_until_end(response) == {"status": "unknown"}
    assert time.monotonic() - started < 6  # STREAM_UNKNOWN_SECONDS=1, with margin


async def test_an_idle_stream_ends(status: Stack, amqp_url: str) -> None:
    job_id = await known_job(status, amqp_url)
    started = time.monotonic()
    async with (
        client(status, timeout=30) as http,
        http.stream("GET", f"/jobs/{job_id}/stream") as response,
    ):
        assert await read_until_end(response) == {"status": "submitted", "idle": True}
    assert 5 <= time.monotonic() - started < 15  # STREAM_IDLE_SECONDS=6
