"""Message contracts: JobSubmitted rules and event round trips."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.contracts import events as ev
from shared.contracts.jobs import JobSubmitted
from shared.contracts.parsing import InvalidJob, parse_job_submitted
from shared.settings import StatusSettings, load

JOB_ID = uuid.uuid4()


def test_defaults_follow_the_contract() -> None:
    job = JobSubmitted(job_id=JOB_ID, job_type="noop")
    assert (
        job.params,
        job.priority,
        job.target_cloud,
        job.data_classification.value,
        job.delay_seconds,
        job.max_attempts,
        job.timeout_seconds,
    ) == ({}, 5, None, "internal", 0, 3, None)


@pytest.mark.parametrize(
    "fields",
    [
        {"job_type": ""},
        {"job_type": "A"},
        {"job_type": "x" * 65},
        {"priority": 10},
        {"priority": -1},
        {"target_cloud": "hybrid"},
        {"data_classification": "secret"},
        {"delay_seconds": 604_801},
        {"max_attempts": 0},
        {"max_attempts": 21},
        {"timeout_seconds": 0},
        {"timeout_seconds": 86_401},
        {"not_before": "2026-01-01T00:00"},
        {"delay_seconds": 1, "not_before": "2026-01-01T00:00:00Z"},
        {"unknown": True},
    ],
)
def test_invalid_fields_are_rejected(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        JobSubmitted.model_validate({"job_id": str(JOB_ID), "job_type": "noop", **fields})


def test_invalid_job_carries_field_errors_and_job_id() -> None:
    with pytest.raises(InvalidJob) as error:
        parse_job_submitted(f'{{"job_id": "{JOB_ID}", "job_type": "noop", "x": 1}}'.encode())
    assert error.value.job_id == str(JOB_ID)
    assert [e.field for e in error.value.errors] == ["x"]


SAMPLES: list[ev.Event] = [
    ev.JobSubmittedEvent(job_id=JOB_ID, job_type="noop"),
    ev.JobRejected(job_id=JOB_ID, reason="r", errors=[ev.FieldError(field="f", message="m")]),
    ev.JobScheduled(job_id=JOB_ID, site="public", not_before=datetime.now(UTC)),  # type: ignore[arg-type]
    ev.JobRouted(job_id=JOB_ID, site="private", rule="default", reason="r", priority=5),  # type: ignore[arg-type]
    ev.JobStarted(job_id=JOB_ID, site="private", attempt=1, worker="w"),  # type: ignore[arg-type]
    ev.JobProgress(job_id=JOB_ID, attempt=1, percent=50, message="half"),
    ev.JobFailed(job_id=JOB_ID, site="public", attempt=1, error="e", retry_at=None),  # type: ignore[arg-type]
    ev.JobSucceeded(job_id=JOB_ID, site="public", attempt=1, duration_seconds=0.1),  # type: ignore[arg-type]
    ev.JobDeadLettered(job_id=JOB_ID, reason="max_attempts", attempts=3),
    ev.JobCancelled(job_id=JOB_ID, reason="operator"),
    ev.JobRedriven(job_id=JOB_ID, site="private", dead_letter_id="d"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_every_event_round_trips_with_its_routing_key(event: ev.Event) -> None:
    data = event.model_dump(mode="json")
    assert data["occurred_at"].endswith("Z")
    assert {"event_id", "job_id", "type", "occurred_at"} <= set(data)
    parsed = ev.parse_event(event.model_dump_json().encode())
    assert parsed == event
    assert parsed.routing_key == f"job.{_snake(data['type'][3:])}"


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def test_settings_read_secret_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = tmp_path
    (secrets / "API_TOKEN").write_text("from-a-file")
    (secrets / "DATABASE_URL").write_text("postgresql+asyncpg://u:p@db/x")
    monkeypatch.setenv("HYBRIDQ_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://env/wins")
    settings = load(StatusSettings)
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "from-a-file"
    assert settings.database_url == "postgresql+asyncpg://env/wins"


def test_dead_letter_time_comes_from_the_message() -> None:
    from shared.dead_letters import dead_lettered_at

    ours = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    broker = datetime(2026, 1, 2, 3, 4, 6)  # AMQP timestamps arrive naive, in UTC
    assert dead_lettered_at({"x-hybridq-dead-lettered-at": ours.isoformat()}) == ours
    assert dead_lettered_at(
        {"x-death": [{"time": broker, "reason": "rejected"}]}
    ) == broker.replace(tzinfo=UTC)
    assert dead_lettered_at({}) is None
