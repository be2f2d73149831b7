"""Client and operator actions: submit (one job or a batch), cancel, redrive.

Cancel and redrive write their intent (the events and messages that must follow) to the
outbox in the transaction that checks and claims, and the caller publishes them after the
commit (services/status/adapters/outbox.py): no dual write, and a crash between the two
publishes later rather than never.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from services.status.domain.arrivals import Arrival
from services.status.domain.ids import cancel_event_id
from services.status.domain.redrive import Plan, plan
from services.status.domain.views import JobStatus
from services.status.service_layer.projecting import project
from services.status.service_layer.unit_of_work import RedriveSelection, UnitOfWork
from shared import messages
from shared.contracts.batches import STATUS_SOURCE
from shared.contracts.events import JobCancelled
from shared.contracts.jobs import MAX_MESSAGE_BYTES, JobSubmitted, Site
from shared.placement.decision import Refusal, place
from shared.placement.rules import Rules


class PolicyRefusal(Exception):
    """The router would refuse this job by policy (residency, no handler)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


class TooLarge(Exception):
    """The job's message would be over the contract's size: 413, the router refuses it."""


class NotFound(Exception):
    """No job with that id."""


class AlreadyTerminal(Exception):
    """The job has ended; a cancel would change nothing."""

    def __init__(self, status: JobStatus) -> None:
        super().__init__(status.value)
        self.status = status


def check_policy(rules: Rules, job: JobSubmitted) -> None:
    """Raise PolicyRefusal for what the router would refuse, so HTTP can answer 422 now."""
    decision = place(job, rules, lambda: 0)
    if isinstance(decision, Refusal):
        raise PolicyRefusal(decision)


def submission(rules: Rules, job: JobSubmitted) -> messages.Envelope:
    """The message that submits `job`, once the router would take it (PolicyRefusal,
    TooLarge otherwise). The caller publishes it: a client retries with the same job_id
    when it is not confirmed, and the router runs a job_id once."""
    check_policy(rules, job)
    envelope = messages.submission(job)
    if len(envelope.body) > MAX_MESSAGE_BYTES:  # the body was within it; the job_id tipped it
        raise TooLarge(f"the job message would be over {MAX_MESSAGE_BYTES // 1024} KiB")
    return envelope


@dataclass(frozen=True)
class Refused:
    """A job of a batch that is not submitted: its errors as (field, message) pairs."""

    errors: list[tuple[str, str]]


def batch_submissions(
    rules: Rules, jobs: Sequence[JobSubmitted | Refused]
) -> list[messages.Envelope | Refused]:
    """Each job of a batch taken on its own, exactly as `submission` takes one job: its
    message, or why it is refused (a job already refused by validation stays refused).
    The caller publishes the messages together."""
    decided: list[messages.Envelope | Refused] = []
    for job in jobs:
        if isinstance(job, Refused):
            decided.append(job)
            continue
        try:
            decided.append(submission(rules, job))
        except PolicyRefusal as exc:
            decided.append(Refused([(exc.refusal.field, exc.refusal.reason)]))
        except TooLarge as exc:
            decided.append(Refused([("(job)", str(exc))]))
    return decided


@dataclass(frozen=True)
class Queued:
    """What a use case queued in the outbox: its rows, and the events to show once they
    are published."""

    rows: list[int] = field(default_factory=list)
    events: list[JobCancelled] = field(default_factory=list)


async def cancel(uow: UnitOfWork, job_id: UUID, reason: str) -> Queued:
    """Queue the job's cancellation (one JobCancelled per job: a retried cancel is a
    duplicate); NotFound for a job never seen, AlreadyTerminal for one that has ended."""
    await uow.jobs.lock([job_id])
    stored = (await uow.jobs.folds([job_id])).get(job_id)
    if stored is None:
        raise NotFound(str(job_id))
    if stored.fold.terminal:
        raise AlreadyTerminal(stored.fold.view.status)
    event = JobCancelled(event_id=cancel_event_id(job_id), job_id=job_id, reason=reason)
    rows = [
        await uow.outbox.add(envelope, f"cancel:{job_id}")
        for envelope in messages.event_batches([event], STATUS_SOURCE)
    ]
    return Queued(rows, [event])


@dataclass(frozen=True)
class Redriven:
    claimed: int
    skipped: list[tuple[str, str]]
    rows: list[int]


async def redrive(uow: UnitOfWork, selection: RedriveSelection, site: Site | None) -> Redriven:
    """Re-open dead-lettered jobs: each claimed (at most once, whoever asks at the same
    time), its JobRedriven shown at once, the event and the job's dispatch queued."""
    plans: dict[str, Plan] = {}
    skipped: list[tuple[str, str]] = []
    for candidate in await uow.dead_letters.candidates(selection):
        planned = plan(candidate, site)
        if isinstance(planned, str):
            skipped.append((candidate.id, planned))
        else:
            plans[candidate.id] = planned
    claimed = await uow.dead_letters.claim(list(plans)) if plans else []
    if not claimed:
        return Redriven(0, skipped, [])
    chosen = [plans[i] for i in claimed]
    await project(uow, [Arrival(p.event) for p in chosen])
    rows = [
        await uow.outbox.add(envelope, f"redrive:{claimed[0]}")
        for envelope in messages.event_batches([p.event for p in chosen], STATUS_SOURCE)
    ]
    for letter_id, p in zip(claimed, chosen, strict=True):
        rows.append(await uow.outbox.add(messages.dispatch(p.job), f"redrive:{letter_id}"))
    return Redriven(len(claimed), skipped, rows)
