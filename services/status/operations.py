"""Operator and client actions: submit, cancel, redrive (the API's write side)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status import queries
from services.status.projection import TERMINAL
from services.status.store import apply_events, mark_redriven
from shared.bus import Bus
from shared.contracts.events import JobCancelled, JobRedriven
from shared.contracts.jobs import DataClassification, JobSubmitted, PlacedJob, Site
from shared.dead_letters import DeadLetterReason
from shared.placement.decision import Refusal, place
from shared.placement.rules import Rules


class PolicyRefusal(Exception):
    """The router would refuse this job by policy (residency, no handler)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


def check_policy(rules: Rules, job: JobSubmitted) -> None:
    """Raise PolicyRefusal for what the router would refuse, so HTTP can answer 422 now."""
    decision = place(job, rules, lambda: 0)
    if isinstance(decision, Refusal):
        raise PolicyRefusal(decision)


async def submit(bus: Bus, rules: Rules, job: JobSubmitted) -> None:
    """Refuse at once what the router would refuse by policy; else publish to intake."""
    check_policy(rules, job)
    await bus.submit(job.model_dump_json().encode())


class NotFound(Exception):
    pass


class AlreadyTerminal(Exception):
    pass


async def cancel(engine: AsyncEngine, bus: Bus, job_id: UUID, reason: str) -> None:
    job = await queries.get_job(engine, job_id)
    if job is None:
        raise NotFound(str(job_id))
    if job["status"] in TERMINAL:
        raise AlreadyTerminal(job["status"])
    event = JobCancelled(job_id=job_id, reason=reason)
    await bus.event(event)  # workers and router stop it; the projection records it
    await apply_events(engine, [event])  # shown at once; the bus copy is a duplicate


_RAN_OUT = {DeadLetterReason.MAX_ATTEMPTS, DeadLetterReason.PERMANENT_ERROR}


async def redrive(
    engine: AsyncEngine, bus: Bus, letters: list[dict[str, Any]], site: Site | None
) -> tuple[int, list[dict[str, str]]]:
    """Re-open dead-lettered jobs: a fresh attempt budget, numbering continued."""
    done: list[str] = []
    skipped: list[dict[str, str]] = []
    for letter in letters:
        try:
            job = PlacedJob.model_validate_json(letter["body"])
        except ValidationError:
            skipped.append({"id": letter["id"], "why": "not a placed job (cannot be run)"})
            continue
        target = site or job.site
        if target is Site.PUBLIC and job.data_classification is DataClassification.CONFIDENTIAL:
            skipped.append({"id": letter["id"], "why": "residency: confidential stays private"})
            continue
        used = job.attempt if letter["reason"] in _RAN_OUT else job.attempt - 1
        nxt = used + 1
        placed = job.model_copy(
            update={
                "site": target,
                "attempt": nxt,
                "first_attempt": nxt,
                "run_at": None,
                "announce": False,
            }
        )
        event = JobRedriven(
            job_id=job.job_id, site=target, dead_letter_id=letter["id"], next_attempt=nxt
        )
        await bus.event(event)
        await apply_events(engine, [event])
        await bus.dispatch(placed)
        done.append(letter["id"])
    if done:
        await mark_redriven(engine, done)
    return len(done), skipped
