"""What redriving a dead letter means: a fresh budget of attempts, numbering continued."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from services.status.domain.ids import redriven_event_id
from shared.contracts.events import JobRedriven
from shared.contracts.jobs import DataClassification, PlacedJob, Site
from shared.dead_letters import DeadLetterReason

RAN_OUT = frozenset({DeadLetterReason.MAX_ATTEMPTS, DeadLetterReason.PERMANENT_ERROR})
"""Reasons whose attempt ran (and failed): the next attempt comes after it."""


@dataclass(frozen=True)
class Candidate:
    """A dead letter an operator asked to redrive."""

    id: str
    reason: str
    body: str


@dataclass(frozen=True)
class Plan:
    """The event that re-opens the job, and the job placed again."""

    event: JobRedriven
    job: PlacedJob


def plan(letter: Candidate, site: Site | None) -> Plan | str:
    """What redriving one dead letter means, or why it cannot be redriven.

    The job gets a fresh budget of its own `max_attempts`, numbered on from the attempts
    it used (a job of 3 that used 3 runs attempts 4 to 6, its view reading "3 of 6"), and
    its retry waits start again from the first (shared/backoff.py counts from
    `first_attempt`). `site` re-places it, residency permitting."""
    try:
        job = PlacedJob.model_validate_json(letter.body)
    except ValidationError:
        return "not a placed job (cannot be run)"
    target = site or job.site
    if target is Site.PUBLIC and job.data_classification is DataClassification.CONFIDENTIAL:
        return "residency: confidential stays private"
    used = job.attempt if letter.reason in RAN_OUT else job.attempt - 1
    nxt = used + 1
    placed = job.model_copy(
        update={
            "site": target,
            "attempt": nxt,
            "first_attempt": nxt,
            "run_at": None,
            "announce": False,
            "park_id": None,
        }
    )
    event = JobRedriven(
        event_id=redriven_event_id(letter.id),
        job_id=job.job_id,
        site=target,
        dead_letter_id=letter.id,
        next_attempt=nxt,
        max_attempts=job.max_attempts,
    )
    return Plan(event, placed)
