"""A failed attempt's consequences, one rule for whoever judges the failure: JobFailed, then
the next attempt parked until its backoff ends (contract §3.1), or the job dead-lettered.

The worker applies it to the attempts it runs; the status service to a long attempt whose
lease lapsed (its worker was lost), through its outbox. Pure: it says what to publish.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from shared import messages, topology
from shared.backoff import retry_delay
from shared.contracts.events import Event, JobFailed
from shared.contracts.jobs import PlacedJob
from shared.dead_letters import DeadLetterReason, Sent, dead_lettered_event
from shared.messages import Envelope


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float
    max_seconds: float


@dataclass(frozen=True)
class Failure:
    """What a failed attempt leads to: its events and the messages that go with them (a
    retry parked in a delay tier, or the job's dead letter), and which it was."""

    events: list[Event]
    messages: list[Envelope]
    outcome: str  # "retrying" or "dead_lettered"


def plan_failure(
    job: PlacedJob,
    error: str,
    *,
    permanent: bool,
    now: datetime,
    policy: RetryPolicy,
    rng: random.Random,
    event_id: UUID | None = None,
) -> Failure:
    """JobFailed, then the next attempt parked until its backoff ends, or (permanent, or
    the budget used) the job dead-lettered. Pure: the worker publishes it at once, the
    status service (a lapsed lease) through its outbox."""
    failed_id = event_id or uuid4()
    if not permanent and job.attempt < job.last_attempt:
        # counted within the budget: a redriven job backs off from the first wait again
        wait = retry_delay(job.attempt_in_budget, policy.base_seconds, policy.max_seconds, rng)
        retry_at = now + timedelta(seconds=wait)
        failed = JobFailed(
            event_id=failed_id,
            job_id=job.job_id,
            site=job.site,
            attempt=job.attempt,
            error=error,
            retry_at=retry_at,
        )
        retry = job.model_copy(update={"attempt": job.attempt + 1, "run_at": retry_at})
        return Failure([failed], [messages.parking(retry, now)], "retrying")
    failed = JobFailed(
        event_id=failed_id, job_id=job.job_id, site=job.site, attempt=job.attempt, error=error
    )
    reason = DeadLetterReason.PERMANENT_ERROR if permanent else DeadLetterReason.MAX_ATTEMPTS
    sent = Sent(str(uuid4()), now)
    letter = messages.dead_letter(
        job.model_dump_json().encode(),
        reason=reason,
        source_queue=topology.work_queue_name(job.site),
        detail=error,
        job_id=str(job.job_id),
        sent=sent,
    )
    # the status service derives the same event from the dead letter: one ending
    ended = dead_lettered_event(sent, job.job_id, reason, error, job.attempt)
    return Failure([failed, ended], [letter], "dead_lettered")
