"""The job state machine: a pure function from a job's events to its view.

Order-proof by construction: the view is folded from the *set* of events, sorted by
(occurred_at, lifecycle rank, event_id), so any arrival order or duplication of the same
events gives the same view. Within the fold a status only moves forward along the
lifecycle key (attempt, rank), so clock skew between services cannot move a job
backwards; terminal states absorb everything but a redrive of a dead-lettered job.
`freeze` adds the one arrival-order rule: a terminal status already shown never changes
(again, except by a redrive).

A malformed or duplicate copy never changes an accepted job: once any event shows the job
was accepted (scheduled, routed, started...), every `JobRejected` for it is ignored,
whatever its timestamp — a rejected copy that arrived first gives way to the acceptance.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from services.status.domain.views import JobStatus, JobView
from shared.contracts.events import (
    AnyEvent,
    JobCancelled,
    JobDeadLettered,
    JobFailed,
    JobProgress,
    JobRedriven,
    JobRejected,
    JobRouted,
    JobScheduled,
    JobStarted,
    JobSubmittedEvent,
    JobSucceeded,
)

LifecycleKey = tuple[int, int]
"""(attempt, rank) of the status shown: a status moves only forward along it."""
BEFORE_ANY: LifecycleKey = (0, -1)


@dataclass(frozen=True, slots=True)
class Fold:
    """The view and where in the lifecycle its status stands."""

    view: JobView
    key: LifecycleKey = BEFORE_ANY

    @property
    def terminal(self) -> bool:
        return self.view.terminal


FoldKey = tuple[datetime, int, str]
"""An event's place in the fold: (occurred_at, lifecycle rank, event_id)."""


def sort_key(event: AnyEvent) -> FoldKey:
    return (event.occurred_at, event.rank, str(event.event_id))


def _attempt_of(event: AnyEvent, view: JobView) -> int:
    if isinstance(event, JobStarted | JobProgress | JobFailed | JobSucceeded):
        return event.attempt
    if isinstance(event, JobDeadLettered):
        return max(event.attempts, view.attempts)
    if isinstance(event, JobRedriven):
        return (event.next_attempt - 1) if event.next_attempt else view.attempts
    return 0


def _set(fold: Fold, key: LifecycleKey | None = None, **changes: Any) -> Fold:
    view = replace(fold.view, **changes) if changes else fold.view
    return Fold(view, fold.key if key is None else key)


def _move(fold: Fold, event: AnyEvent, status: JobStatus, **changes: Any) -> Fold:
    """Change status if the event is not behind the status shown; always apply `changes`."""
    key = (_attempt_of(event, fold.view), event.rank)
    if key >= fold.key:
        return _set(fold, key, status=status, **changes)
    return _set(fold, **changes)


def step(fold: Fold, event: AnyEvent) -> Fold:
    """Fold one event into the view."""
    view = fold.view
    if view.terminal and not (
        view.status is JobStatus.DEAD_LETTERED and isinstance(event, JobRedriven)
    ):
        return _fill(fold, event)
    match event:
        case JobSubmittedEvent():
            fold = _fill(fold, event)
            return _move(fold, event, JobStatus.SUBMITTED) if fold.key == BEFORE_ANY else fold
        case JobRejected():
            return _set(
                fold,
                (0, event.rank),
                status=JobStatus.REJECTED,
                error=event.reason,
                finished_at=event.occurred_at,
            )
        case JobScheduled():
            return _move(fold, event, JobStatus.SCHEDULED, site=event.site)
        case JobRouted():
            return _move(
                fold,
                event,
                JobStatus.QUEUED,
                site=event.site,
                rule=event.rule,
                reason=event.reason,
                priority=event.priority,
            )
        case JobStarted() | JobProgress():
            return _move(_fill(fold, event), event, JobStatus.RUNNING)
        case JobFailed():
            fold = _set(fold, attempts=max(view.attempts, event.attempt), error=event.error)
            if event.retry_at is None:
                return fold
            return _move(fold, event, JobStatus.RETRYING)
        case JobSucceeded():
            return _set(
                _fill(fold, event),
                (event.attempt, event.rank),
                status=JobStatus.SUCCEEDED,
                result=event.result,
                error=None,
                finished_at=event.occurred_at,
            )
        case JobDeadLettered():
            return _set(
                fold,
                (_attempt_of(event, view), event.rank),
                status=JobStatus.DEAD_LETTERED,
                attempts=max(view.attempts, event.attempts),
                error=view.error or event.reason,
                finished_at=event.occurred_at,
            )
        case JobCancelled():
            return _set(
                fold,
                (fold.key[0], event.rank),
                status=JobStatus.CANCELLED,
                error=event.reason,
                finished_at=event.occurred_at,
            )
        case JobRedriven():
            return _set(
                fold,
                (_attempt_of(event, view), event.rank),
                status=JobStatus.QUEUED,
                site=event.site,
                finished_at=None,
                error=None,
                max_attempts=_budget_end(event, view),
            )
    return fold


def _budget_end(event: JobRedriven, view: JobView) -> int | None:
    """A redrive opens a fresh budget of the job's own `max_attempts`, numbered on from
    the attempts used: the view's `max_attempts` is the last attempt that budget allows (a
    job of 3 that used 3 reads "3 of 6" after one redrive). A v1.1 redrive event does not
    say the budget: the view keeps what it had."""
    if event.next_attempt is None or event.max_attempts is None:
        return view.max_attempts
    return event.next_attempt - 1 + event.max_attempts


def _fill(fold: Fold, event: AnyEvent) -> Fold:
    """Facts an event adds whatever the status: spec fields, attempts, start, progress."""
    view = fold.view
    if isinstance(event, JobSubmittedEvent):
        return _set(
            fold,
            job_type=event.job_type,
            params=event.params,
            priority=view.priority if view.priority is not None else event.priority,
            data_classification=event.data_classification,
            max_attempts=view.max_attempts if view.max_attempts else event.max_attempts,
            submitted_at=event.occurred_at,
            parent_id=event.parent_id,
        )
    if isinstance(event, JobStarted):
        first = view.started_at is None or event.occurred_at < view.started_at
        return _set(
            fold,
            attempts=max(view.attempts, event.attempt),
            site=view.site or event.site,
            started_at=event.occurred_at if first else view.started_at,
        )
    if isinstance(event, JobProgress) and event.attempt >= view.attempts:
        return _set(
            fold,
            attempts=max(view.attempts, event.attempt),
            progress=event.percent,
            progress_message=event.message,
        )
    if isinstance(event, JobSucceeded):
        return _set(fold, attempts=max(view.attempts, event.attempt), progress=100.0)
    return fold


ACCEPTANCE = (
    JobScheduled,
    JobRouted,
    JobStarted,
    JobProgress,
    JobFailed,
    JobSucceeded,
    JobRedriven,
)
"""Events that exist only for a job hybridq accepted: they outrank any `JobRejected`."""


def accepted(events: Iterable[AnyEvent]) -> bool:
    return any(isinstance(e, ACCEPTANCE) for e in events)


def fold_onto(fold: Fold, events: Iterable[AnyEvent]) -> Fold:
    """Fold events that all sort after every event already in `fold` onto it: the same
    fold `reduce` gives for all of them, when it is not terminal (so not frozen, and not a
    rejection an acceptance could lift) and none of `events` is a `JobRejected`."""
    for event in sorted(events, key=sort_key):
        fold = step(fold, event)
    return fold


def last_key(events: Iterable[AnyEvent]) -> FoldKey:
    """Where a fold of `events` stops: the largest sort key."""
    return max(sort_key(e) for e in events)


def reduce(job_id: UUID, events: Iterable[AnyEvent]) -> Fold:
    """The view of a job from its events, whatever order they arrived in."""
    events = list(events)
    if accepted(events):
        events = [e for e in events if not isinstance(e, JobRejected)]
    first: dict[UUID, AnyEvent] = {}
    for event in sorted(events, key=sort_key):
        first.setdefault(event.event_id, event)  # a duplicate counts once
    return fold_onto(Fold(JobView(job_id=job_id)), first.values())


def freeze(old: Fold | None, new: Fold, arrived: Iterable[AnyEvent]) -> Fold:
    """Keep a terminal status already shown, unless the new events re-open it (redrive)."""
    if old is None or not old.terminal or old.view.status == new.view.status:
        return new
    was = old.view.status
    reopened = was is JobStatus.DEAD_LETTERED and any(isinstance(e, JobRedriven) for e in arrived)
    if reopened or (was is JobStatus.REJECTED and accepted(arrived)):
        return new
    return Fold(replace(new.view, status=was, finished_at=old.view.finished_at), old.key)
