"""Project a batch of events, record a dead letter: the consuming use cases.

`project` takes per-job locks (sorted, so replicas never deadlock) before it inserts
events, reads views and histories and saves the new views, all in the caller's unit of
work; the saga coordinator sees each ending in the same transaction (`groups`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from uuid import UUID

from services.status.domain.arrivals import Arrival, Outcome
from services.status.domain.dead_letters import DeadLetter, ending_event
from services.status.domain.projection import (
    Fold,
    fold_onto,
    freeze,
    last_key,
    reduce,
    sort_key,
)
from services.status.domain.views import TERMINAL
from services.status.service_layer import groups, webhooks
from services.status.service_layer.unit_of_work import StoredFold, UnitOfWork
from shared.contracts.events import AnyEvent, JobRejected
from shared.identity import Speaker


async def project(uow: UnitOfWork, arrivals: Sequence[Arrival]) -> list[Outcome]:
    """Record the events and re-fold the views they touch; one outcome per arrival."""
    if not arrivals:
        return []
    ids = sorted({a.event.job_id for a in arrivals})
    await uow.jobs.lock(ids)  # one writer per job, even across status replicas
    old = await uow.jobs.folds(ids)
    forbidden = [
        a.forbidden(old[a.event.job_id].fold.view.site if a.event.job_id in old else None)
        for a in arrivals
    ]
    allowed = {a.event.event_id: a.event for a, f in zip(arrivals, forbidden, strict=True) if not f}
    new_ids = await uow.jobs.add_events(list(allowed.values())) if allowed else set()
    fresh = [e for e in allowed.values() if e.event_id in new_ids]
    if fresh:
        saved = await _refold(uow, old, fresh)
        await webhooks.queue_projected(uow, fresh, saved)
        endings = [
            (s.fold.view.job_id, s.fold.view.status, s.fold.view.site)
            for s in saved
            if _ended(old, s.fold)
        ]
        if endings:
            await groups.members_ended(uow, endings)
    return [
        Outcome.FORBIDDEN
        if f
        else (Outcome.PROJECTED if a.event.event_id in new_ids else Outcome.DUPLICATE)
        for a, f in zip(arrivals, forbidden, strict=True)
    ]


def _ended(old: dict[UUID, StoredFold], fold: Fold) -> bool:
    """The view is terminal now, and was not (or not with this status) before."""
    before = old.get(fold.view.job_id)
    return fold.terminal and (before is None or before.fold.view.status != fold.view.status)


def _foldable(before: StoredFold, arrived: list[AnyEvent]) -> bool:
    """New events can be folded onto the stored view (`projection.fold_onto`): they all sort
    after its last event, the view is not terminal and none of them is a rejection."""
    return (
        before.folded is not None
        and not before.fold.terminal
        and not any(isinstance(e, JobRejected) for e in arrived)
        and min(sort_key(e) for e in arrived) > before.folded
    )


async def _refold(
    uow: UnitOfWork, old: dict[UUID, StoredFold], fresh: list[AnyEvent]
) -> list[StoredFold]:
    """The new view of every job with fresh events. A job seen for the first time has no
    other events (events and view are written together, under the job's lock); events in
    order are folded onto the stored view; anything else re-reads the job's history."""
    by_job: dict[UUID, list[AnyEvent]] = defaultdict(list)
    for event in fresh:
        by_job[event.job_id].append(event)
    reread = sorted(j for j, a in by_job.items() if j in old and not _foldable(old[j], a))
    history = await uow.jobs.histories(reread) if reread else {}
    saved = []
    for job_id, arrived in sorted(by_job.items()):
        before = old.get(job_id)
        if before is None:
            folded, last = reduce(job_id, arrived), last_key(arrived)
        elif job_id in history:
            folded, last = reduce(job_id, history[job_id]), last_key(history[job_id])
        else:
            folded, last = fold_onto(before.fold, arrived), last_key(arrived)
        fold = freeze(before.fold if before else None, folded, arrived)
        first_seen = min(e.occurred_at for e in arrived)
        listed_at = fold.view.submitted_at or (before.listed_at if before else first_seen)
        saved.append(StoredFold(fold, listed_at, last))
    await uow.jobs.save(saved)
    return saved


async def record_dead_letter(uow: UnitOfWork, letter: DeadLetter) -> bool:
    """Store a dead letter and, in the same transaction, end its job's view unless the job
    is already terminal (`project` records a group member's ending with it). True if the
    dead letter was new."""
    event = ending_event(letter)
    if event is not None:
        await uow.jobs.lock([event.job_id])
    if not await uow.dead_letters.add(letter):
        return False
    if event is not None:
        current = (await uow.jobs.folds([event.job_id])).get(event.job_id)
        if current is None or current.fold.view.status not in TERMINAL:
            # the dead letter's publisher (a worker's user) speaks for its own site only;
            # the broker's own dead-lettering carries no user and ends any job
            await project(uow, [Arrival(event, Speaker(letter.publisher))])
    return True
