"""The status API's publishes with a broker that never confirms (a resource alarm blocks
publishers) or refuses: a prompt BackendUnavailable (503), never a hang."""

from __future__ import annotations

import asyncio
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from services.status.entrypoints.http.deps import (
    BackendUnavailable,
    publish_all_within,
    publish_within,
)
from services.status.service_layer import operations
from shared.bus import Bus
from shared.contracts.jobs import JobSubmitted
from shared.placement.rules import load_rules
from shared.settings import StatusSettings


class Blocked:
    """A broker whose publishes are never confirmed."""

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        await asyncio.Event().wait()


class Gone:
    async def publish(self, *args: Any, **kwargs: Any) -> None:
        raise ConnectionResetError("connection lost")


@pytest.mark.parametrize("broker", [Blocked(), Gone()], ids=["blocked", "gone"])
async def test_submit_gives_up_within_the_publish_timeout(broker: Any) -> None:
    rules = load_rules(StatusSettings().routing_rules)
    job = JobSubmitted(job_id=uuid.uuid4(), job_type="noop")
    res = SimpleNamespace(
        bus=Bus(broker),
        settings=StatusSettings(PUBLISH_TIMEOUT_SECONDS=0.3),  # type: ignore[call-arg]
    )
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="broker"):
        await publish_within(res, operations.submission(rules, job), "the job")  # type: ignore[arg-type]
    assert time.monotonic() - started < 2


def test_a_job_whose_message_would_pass_256_kib_is_too_large() -> None:
    """A body just under the HTTP limit can still make a message over the contract's
    256 KiB once the job_id and defaults are added: refused here, not by the router."""
    rules = load_rules(StatusSettings().routing_rules)
    job = JobSubmitted(job_id=uuid.uuid4(), job_type="noop", params={"b": "x" * (256 * 1024 - 40)})
    with pytest.raises(operations.TooLarge):
        operations.submission(rules, job)


def test_a_batch_is_taken_job_by_job() -> None:
    """Each job of a batch as `submission` takes one: a refused one refuses only itself."""
    rules = load_rules(StatusSettings().routing_rules)
    ok = JobSubmitted(job_id=uuid.uuid4(), job_type="noop")
    residency = JobSubmitted(
        job_id=uuid.uuid4(),
        job_type="noop",
        data_classification="confidential",  # type: ignore[arg-type]
        target_cloud="public",  # type: ignore[arg-type]
    )
    big = JobSubmitted(job_id=uuid.uuid4(), job_type="noop", params={"b": "x" * (256 * 1024)})
    invalid = operations.Refused([("max_attempts", "bad")])
    decided = operations.batch_submissions(rules, [ok, residency, invalid, big, ok])
    assert [type(d).__name__ for d in decided] == [
        "Envelope",
        "Refused",
        "Refused",
        "Refused",
        "Envelope",
    ]
    assert decided[1].errors[0][0] == "target_cloud"  # type: ignore[union-attr]
    assert decided[2] is invalid
    assert decided[3].errors[0][0] == "(job)"  # type: ignore[union-attr]


@pytest.mark.parametrize("broker", [Blocked(), Gone()], ids=["blocked", "gone"])
async def test_a_batch_gives_up_within_the_publish_timeout(broker: Any) -> None:
    """1,000 publishes awaited together: one timeout for all, not one each."""
    rules = load_rules(StatusSettings().routing_rules)
    envelopes = [
        operations.submission(rules, JobSubmitted(job_id=uuid.uuid4(), job_type="noop"))
        for _ in range(1000)
    ]
    res = SimpleNamespace(
        bus=Bus(broker),
        settings=StatusSettings(PUBLISH_TIMEOUT_SECONDS=0.3),  # type: ignore[call-arg]
    )
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="broker"):
        await publish_all_within(res, envelopes, "1000 jobs")  # type: ignore[arg-type]
    assert time.monotonic() - started < 2
