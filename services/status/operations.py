"""Operator and client actions: submit, cancel, redrive (the API's write side)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status import queries, redrives
from services.status.db_errors import is_backend_error
from services.status.projection import TERMINAL
from services.status.store import apply_events
from shared.bus import Bus
from shared.contracts.events import JobCancelled, JobRedriven
from shared.contracts.jobs import (
    MAX_MESSAGE_BYTES,
    DataClassification,
    JobSubmitted,
    PlacedJob,
    Site,
)
from shared.dead_letters import DeadLetterReason
from shared.placement.decision import Refusal, place
from shared.placement.rules import Rules

log = logging.getLogger("hybridq.status.operations")


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


class TooLarge(Exception):
    """The job's message would be over the contract's size: 413, the router refuses it."""


class BackendUnavailable(Exception):
    """The broker or the database did not answer (or not in time): 503, try again."""


async def _within(seconds: float, what: str, call: Awaitable[None]) -> None:
    """Await a broker call, at most `seconds`: a blocked broker (resource alarm) never
    confirms, and a client must hear so rather than hang."""
    try:
        async with asyncio.timeout(seconds):
            await call
    except TimeoutError as exc:
        raise BackendUnavailable(f"the broker did not confirm {what} within {seconds:g} s") from exc
    except Exception as exc:  # anything reaching or using the broker is transient
        raise BackendUnavailable(f"the broker did not take {what}: {exc!r}") from exc


async def submit(bus: Bus, rules: Rules, job: JobSubmitted, timeout: float) -> None:
    """Refuse at once what the router would refuse by policy; else publish to intake.

    BackendUnavailable when the publish is not confirmed in time; the client retries with
    the same job_id (the router runs a job_id once)."""
    check_policy(rules, job)
    body = job.model_dump_json().encode()
    if len(body) > MAX_MESSAGE_BYTES:  # the body was within it; the job_id added tipped it
        raise TooLarge(f"the job message would be over {MAX_MESSAGE_BYTES // 1024} KiB")
    await _within(timeout, "the job", bus.submit(body))


def _unavailable(exc: Exception, what: str) -> BackendUnavailable:
    """BackendUnavailable for database trouble; anything else is a bug: raised as it is."""
    if not is_backend_error(exc):
        raise exc
    return BackendUnavailable(what)


class NotFound(Exception):
    """No job with that id."""


class AlreadyTerminal(Exception):
    """The job has ended; a cancel would change nothing."""


def cancel_event_id(job_id: UUID) -> UUID:
    """One JobCancelled per job: a retried cancel is a duplicate, not a second event."""
    return uuid5(NAMESPACE_URL, f"hybridq:cancel:{job_id}")


async def cancel(engine: AsyncEngine, bus: Bus, job_id: UUID, reason: str, timeout: float) -> None:
    try:
        job = await queries.get_job(engine, job_id)
    except Exception as exc:
        raise _unavailable(exc, "the database did not answer") from exc
    if job is None:
        raise NotFound(str(job_id))
    if job["status"] in TERMINAL:
        raise AlreadyTerminal(job["status"])
    event = JobCancelled(event_id=cancel_event_id(job_id), job_id=job_id, reason=reason)
    await _within(timeout, "the cancel", bus.event(event))  # workers and router stop it
    try:
        await apply_events(engine, [event])  # shown at once; the bus copy is a duplicate
    except Exception as exc:  # published: the projection records it from the bus
        raise _unavailable(exc, "cancel published; the database did not record it yet") from exc


_RAN_OUT = {DeadLetterReason.MAX_ATTEMPTS, DeadLetterReason.PERMANENT_ERROR}


def _plan(letter: dict[str, Any], site: Site | None) -> tuple[JobRedriven, PlacedJob] | str:
    """What redriving one dead letter means, or why it cannot be redriven."""
    try:
        job = PlacedJob.model_validate_json(letter["body"])
    except ValidationError:
        return "not a placed job (cannot be run)"
    target = site or job.site
    if target is Site.PUBLIC and job.data_classification is DataClassification.CONFIDENTIAL:
        return "residency: confidential stays private"
    used = job.attempt if letter["reason"] in _RAN_OUT else job.attempt - 1
    nxt = used + 1
    fresh = {"site": target, "attempt": nxt, "first_attempt": nxt, "run_at": None}
    placed = job.model_copy(update={**fresh, "announce": False})
    event = JobRedriven(
        event_id=redrives.redriven_event_id(letter["id"]),
        job_id=job.job_id,
        site=target,
        dead_letter_id=letter["id"],
        next_attempt=nxt,
    )
    return event, placed


async def redrive(
    engine: AsyncEngine, bus: Bus, letters: list[dict[str, Any]], site: Site | None
) -> tuple[int, list[dict[str, str]]]:
    """Re-open dead-lettered jobs: a fresh attempt budget, numbering continued.

    Each letter is claimed in the database before anything is published, so concurrent
    redrives of one letter dispatch it once; the dispatch follows from the outbox."""
    planned: dict[str, tuple[JobRedriven, PlacedJob]] = {}
    skipped: list[dict[str, str]] = []
    for letter in letters:
        plan = _plan(letter, site)
        if isinstance(plan, str):
            skipped.append({"id": letter["id"], "why": plan})
        else:
            planned[letter["id"]] = plan
    try:
        claimed = await redrives.claim(engine, planned)
    except Exception as exc:
        raise _unavailable(exc, "the database did not answer; nothing was redriven") from exc
    if claimed:
        try:
            await redrives.relay(engine, bus)
        except Exception as exc:  # claimed and queued: the background relay publishes it
            if not is_backend_error(exc):
                raise
            log.warning("redrive relay deferred: the database did not answer", exc_info=True)
    return claimed, skipped
