"""The HTTP executor against a local stand-in for a cloud batch API."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from shared.errors import PermanentJobError
from shared.worker.builtins import register_builtins
from shared.worker.handlers import JobContext, Registry
from shared.worker.http_executor import HttpExecutor, RemoteJobFailed
from tests.conftest import free_port
from tests.fake_batch_api import FakeBatchApi

pytestmark = pytest.mark.connected


@pytest.fixture(scope="module")
def remote() -> Iterator[tuple[FakeBatchApi, str]]:
    fake = FakeBatchApi(token="s3cret")
    port = free_port()
    server = fake.serve(port)
    yield fake, f"http://127.0.0.1:{port}"
    server.should_exit = True


class Recorder:
    """A context link that records progress (the executor submits no child jobs)."""

    def __init__(self, progress: list[float]) -> None:
        self.seen = progress

    def progress(self, percent: float, message: str) -> None:
        self.seen.append(percent)

    def submit(self, request: dict[str, Any]) -> None:
        raise AssertionError("no child jobs expected")


def context(params: dict[str, Any], progress: list[float]) -> JobContext:
    return JobContext(uuid.uuid4(), "transcode", params, 1, Recorder(progress))


def executor(url: str, token: str = "s3cret") -> HttpExecutor:
    return HttpExecutor(url, token, register_builtins(Registry()), poll_seconds=0.05)


async def test_submits_polls_and_returns_the_remote_result(
    remote: tuple[FakeBatchApi, str],
) -> None:
    fake, url = remote
    progress: list[float] = []
    result = await executor(url).run(context({}, progress))
    assert result == {"ran_remotely": True, "job_type": "transcode"}
    assert progress[-1] == 100
    assert progress == sorted(progress)
    assert fake.seen_auth[-1] == "Bearer s3cret"


async def test_remote_failures_are_retryable_or_permanent(
    remote: tuple[FakeBatchApi, str],
) -> None:
    _, url = remote
    with pytest.raises(RemoteJobFailed, match="remote node lost"):
        await executor(url).run(context({"fail": True}, []))
    with pytest.raises(PermanentJobError):
        await executor(url).run(context({"fail": True, "permanent": True}, []))
    with pytest.raises(PermanentJobError, match="rejected"):
        await executor(url).run(context({"reject": True}, []))


async def test_a_timed_out_attempt_cancels_the_remote_job(
    remote: tuple[FakeBatchApi, str],
) -> None:
    fake, url = remote
    fake.run_seconds = 5
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await executor(url).run(context({}, []))
    finally:
        fake.run_seconds = 0.3
    await asyncio.sleep(0.2)
    assert fake.deleted


async def test_a_wrong_token_is_an_error(remote: tuple[FakeBatchApi, str]) -> None:
    _, url = remote
    with pytest.raises(Exception, match="401"):
        await executor(url, token="wrong").run(context({}, []))
