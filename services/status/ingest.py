"""The status service's consuming use cases: project a batch of events, record a dead letter.

They talk to storage only through a `UnitOfWork` (one transaction), so they are unit-tested
with an in-memory fake and run on Postgres unchanged (`store.PgUnitOfWork`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol
from uuid import NAMESPACE_URL, UUID, uuid5

from services.status.projection import (
    TERMINAL,
    FoldKey,
    JobView,
    fold_onto,
    freeze,
    last_key,
    reduce,
    sort_key,
)
from shared.contracts.events import (
    AnyEvent,
    JobDeadLettered,
    JobRejected,
)
from shared.contracts.jobs import Site
from shared.identity import Speaker


class Outcome(StrEnum):
    """What became of one event handed to the projection."""

    PROJECTED = "projected"
    DUPLICATE = "duplicate"
    FORBIDDEN = "forbidden"  # a worker reported on a job of another site: dead-letter it


class Ending(StrEnum):
    """What a dead letter does to its job's view."""

    NONE = "none"  # not the job's own message (an event's copy, a forged one)
    REJECT = "reject"  # an unprocessable copy: `rejected`, unless the job was accepted
    DEAD_LETTER = "dead_letter"  # the job itself will not run: `dead_lettered`


UNRESTRICTED = Speaker()
"""A publisher that is no worker's user (router, status, an operator)."""


@dataclass(frozen=True)
class Arrival:
    """An event and who published it (from the message's validated `user_id`)."""

    event: AnyEvent
    speaker: Speaker = UNRESTRICTED


@dataclass(frozen=True)
class StoredView:
    view: JobView
    listed_at: datetime  # newest-first listing key
    folded: FoldKey | None = None  # sort key of the last event folded into `view`


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter as the store keeps it (every text already storable, see sanitize)."""

    id: str
    job_id: UUID | None
    reason: str
    dead_lettered_at: datetime
    body: str
    raw_body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    job_type: str | None = None
    site: str | None = None
    detail: str | None = None
    source_queue: str | None = None
    attempts: int = 0
    publisher: Site | None = None
    ending: Ending = Ending.DEAD_LETTER


class UnitOfWork(Protocol):
    """One transaction on the status store; commits when its context exits cleanly."""

    async def lock_jobs(self, ids: Sequence[UUID]) -> None: ...
    async def views(self, ids: Sequence[UUID]) -> dict[UUID, StoredView]: ...
    async def insert_events(self, events: Sequence[AnyEvent]) -> set[UUID]: ...
    async def histories(self, ids: Sequence[UUID]) -> dict[UUID, list[AnyEvent]]: ...
    async def save_views(self, views: Sequence[StoredView]) -> None: ...
    async def insert_dead_letter(self, letter: DeadLetter) -> bool: ...
    async def members_ended(self, endings: Sequence[tuple[UUID, str]]) -> None:
        """Jobs whose view just became terminal, with that status: for the ones that are
        open members of a group, record the ending and queue the compensations it calls
        for (the saga coordinator, services/status/saga.py), in this transaction."""
        ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[UnitOfWork]: ...


def is_forbidden(arrival: Arrival, known_site: str | None) -> bool:
    """An event its publisher may not report: shared.identity's one rule (contract §3.2)."""
    return not arrival.speaker.may_report(arrival.event, known_site)


async def project(uow: UnitOfWork, arrivals: Sequence[Arrival]) -> list[Outcome]:
    """Record the events and re-fold the views they touch; one outcome per arrival."""
    if not arrivals:
        return []
    ids = sorted({a.event.job_id for a in arrivals})
    await uow.lock_jobs(ids)  # one writer per job, even across status replicas
    old = await uow.views(ids)
    forbidden = [
        is_forbidden(a, old[a.event.job_id].view.site if a.event.job_id in old else None)
        for a in arrivals
    ]
    allowed = {a.event.event_id: a.event for a, f in zip(arrivals, forbidden, strict=True) if not f}
    new_ids = await uow.insert_events(list(allowed.values())) if allowed else set()
    fresh = [e for e in allowed.values() if e.event_id in new_ids]
    if fresh:
        saved = await _refold(uow, old, fresh)
        # the saga coordinator sees each ending in the transaction that shows it: no
        # queue, delivery or transaction of its own per job
        endings = [(s.view.job_id, s.view.status) for s in saved if _ended(old, s.view)]
        if endings:
            await uow.members_ended(endings)
    return [
        Outcome.FORBIDDEN
        if f
        else (Outcome.PROJECTED if a.event.event_id in new_ids else Outcome.DUPLICATE)
        for a, f in zip(arrivals, forbidden, strict=True)
    ]


def _ended(old: dict[UUID, StoredView], view: JobView) -> bool:
    """The view is terminal now, and was not (or not with this status) before."""
    before = old.get(view.job_id)
    return view.terminal and (before is None or before.view.status != view.status)


def _foldable(before: StoredView, arrived: list[AnyEvent]) -> bool:
    """New events can be folded onto the stored view (`projection.fold_onto`): they all sort
    after its last event, the view is not terminal and none of them is a rejection."""
    return (
        before.folded is not None
        and not before.view.terminal
        and not any(isinstance(e, JobRejected) for e in arrived)
        and min(sort_key(e) for e in arrived) > before.folded
    )


async def _refold(
    uow: UnitOfWork, old: dict[UUID, StoredView], fresh: list[AnyEvent]
) -> list[StoredView]:
    """The new view of every job with fresh events. A job seen for the first time has no
    other events (events and view are written together, under the job's lock); events in
    order are folded onto the stored view; anything else re-reads the job's history."""
    by_job: dict[UUID, list[AnyEvent]] = defaultdict(list)
    for event in fresh:
        by_job[event.job_id].append(event)
    reread = sorted(j for j, a in by_job.items() if j in old and not _foldable(old[j], a))
    history = await uow.histories(reread) if reread else {}
    saved = []
    for job_id, arrived in sorted(by_job.items()):
        before = old.get(job_id)
        if before is None:
            folded, last = reduce(job_id, arrived), last_key(arrived)
        elif job_id in history:
            folded, last = reduce(job_id, history[job_id]), last_key(history[job_id])
        else:
            folded, last = fold_onto(before.view, arrived), last_key(arrived)
        view = freeze(before.view if before else None, folded, arrived)
        first_seen = min(e.occurred_at for e in arrived)
        listed_at = view.submitted_at or (before.listed_at if before else first_seen)
        saved.append(StoredView(view, listed_at, last))
    await uow.save_views(saved)
    return saved


def dead_letter_event(letter: DeadLetter) -> AnyEvent | None:
    """The event that ends the job of a dead letter; its id derives from the dead letter's,
    so recording the same dead letter twice gives the same event (a duplicate)."""
    if letter.job_id is None or letter.ending is Ending.NONE:
        return None
    event_id = uuid5(NAMESPACE_URL, f"hybridq:dead-letter:{letter.id}")
    if letter.ending is Ending.REJECT:
        return JobRejected(
            event_id=event_id,
            job_id=letter.job_id,
            reason=f"unprocessable message ({letter.reason})",
            occurred_at=letter.dead_lettered_at,
        )
    # the detail (e.g. the attempt's error) too: this event can be projected before the
    # worker's own JobFailed, and the first terminal view should say why
    reason = f"{letter.reason}: {letter.detail}" if letter.detail else letter.reason
    return JobDeadLettered(
        event_id=event_id,
        job_id=letter.job_id,
        reason=reason[:2000],
        attempts=letter.attempts,
        occurred_at=letter.dead_lettered_at,
    )


async def record_dead_letter(uow: UnitOfWork, letter: DeadLetter) -> bool:
    """Store a dead letter and, in the same transaction, end its job's view unless the job
    is already terminal (`project` records a group member's ending with it). True if the
    dead letter was new."""
    event = dead_letter_event(letter)
    if event is not None:
        await uow.lock_jobs([event.job_id])
    if not await uow.insert_dead_letter(letter):
        return False
    if event is not None:
        current = (await uow.views([event.job_id])).get(event.job_id)
        if current is None or current.view.status not in TERMINAL:
            await project(uow, [Arrival(event, Speaker(letter.publisher))])
    return True
