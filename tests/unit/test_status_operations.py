"""The status API's write side with a broker that never confirms (a resource alarm
blocks publishers) or refuses: a prompt BackendUnavailable (503), never a hang."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any
from unittest.mock import AsyncMock

import pytest
from sqlalchemy.exc import OperationalError

from services.status import operations
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
    started = time.monotonic()
    with pytest.raises(operations.BackendUnavailable, match="broker"):
        await operations.submit(Bus(broker), rules, job, timeout=0.3)
    assert time.monotonic() - started < 2


async def test_cancel_gives_up_within_the_publish_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    view = AsyncMock(return_value={"status": "running"})
    monkeypatch.setattr(operations.queries, "get_job", view)
    record = AsyncMock()
    monkeypatch.setattr(operations, "apply_events", record)
    with pytest.raises(operations.BackendUnavailable):
        await operations.cancel(AsyncMock(), Bus(Blocked()), uuid.uuid4(), "stop", timeout=0.3)  # type: ignore[arg-type]
    record.assert_not_called()  # nothing recorded that the workers were not told


def test_cancel_event_id_is_one_per_job() -> None:
    job_id = uuid.uuid4()
    assert operations.cancel_event_id(job_id) == operations.cancel_event_id(job_id)
    assert operations.cancel_event_id(job_id) != operations.cancel_event_id(uuid.uuid4())


async def test_cancel_with_the_database_away_is_backend_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    away = OperationalError("SELECT", {}, ConnectionRefusedError("refused"))
    monkeypatch.setattr(operations.queries, "get_job", AsyncMock(side_effect=away))
    with pytest.raises(operations.BackendUnavailable, match="database"):
        await operations.cancel(AsyncMock(), Bus(Gone()), uuid.uuid4(), "stop", timeout=1)  # type: ignore[arg-type]


async def test_a_bug_is_not_disguised_as_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(operations.queries, "get_job", AsyncMock(side_effect=KeyError("x")))
    with pytest.raises(KeyError):
        await operations.cancel(AsyncMock(), Bus(Gone()), uuid.uuid4(), "stop", timeout=1)  # type: ignore[arg-type]


async def test_a_job_whose_message_would_pass_256_kib_is_too_large() -> None:
    """A body just under the HTTP limit can still make a message over the contract's
    256 KiB once the job_id and defaults are added: refused here, not by the router."""
    rules = load_rules(StatusSettings().routing_rules)
    job = JobSubmitted(job_id=uuid.uuid4(), job_type="noop", params={"b": "x" * (256 * 1024 - 40)})
    broker = Gone()
    with pytest.raises(operations.TooLarge):
        await operations.submit(Bus(broker), rules, job, timeout=1)  # type: ignore[arg-type]
