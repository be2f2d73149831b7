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
from enum import StrEnum
from typing import Any
from uuid import UUID

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


class JobStatus(StrEnum):
    """A job view's status (contract section 5); compares equal to its string."""

    SUBMITTED = "submitted"
    REJECTED = "rejected"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    DEAD_LETTERED = "dead_lettered"
    CANCELLED = "cancelled"


TERMINAL = frozenset(
    {JobStatus.REJECTED, JobStatus.SUCCEEDED, JobStatus.DEAD_LETTERED, JobStatus.CANCELLED}
)
STATUSES = tuple(s.value for s in JobStatus)


@dataclass(frozen=True)
class JobView:
    job_id: UUID
    status: str = "submitted"
    job_type: str | None = None
    site: str | None = None
    rule: str | None = None
    reason: str | None = None
    priority: int | None = None
    data_classification: str | None = None
    attempts: int = 0
    max_attempts: int | None = None
    params: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    progress: float | None = None
    progress_message: str | None = None
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    parent_id: UUID | None = None
    key: tuple[int, int] = (0, -1)  # lifecycle position of the status shown

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


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


def _move(view: JobView, event: AnyEvent, status: str, **changes: Any) -> JobView:
    """Change status if the event is not behind the status shown; always apply `changes`."""
    key = (_attempt_of(event, view), event.rank)
    if key >= view.key:
        return replace(view, status=status, key=key, **changes)
    return replace(view, **changes) if changes else view


def step(view: JobView, event: AnyEvent) -> JobView:
    """Fold one event into the view."""
    if view.terminal and not (view.status == "dead_lettered" and isinstance(event, JobRedriven)):
        return _fill(view, event)
    match event:
        case JobSubmittedEvent():
            view = _fill(view, event)
            return _move(view, event, "submitted") if view.key == (0, -1) else view
        case JobRejected():
            return replace(
                view,
                status="rejected",
                key=(0, event.rank),
                error=event.reason,
                finished_at=event.occurred_at,
            )
        case JobScheduled():
            return _move(view, event, "scheduled", site=event.site.value)
        case JobRouted():
            return _move(
                view,
                event,
                "queued",
                site=event.site.value,
                rule=event.rule,
                reason=event.reason,
                priority=event.priority,
            )
        case JobStarted() | JobProgress():
            view = _fill(view, event)
            return _move(view, event, "running")
        case JobFailed():
            view = replace(view, attempts=max(view.attempts, event.attempt), error=event.error)
            if event.retry_at is None:
                return view
            return _move(view, event, "retrying")
        case JobSucceeded():
            return replace(
                _fill(view, event),
                status="succeeded",
                key=(event.attempt, event.rank),
                result=event.result,
                error=None,
                finished_at=event.occurred_at,
            )
        case JobDeadLettered():
            return replace(
                view,
                status="dead_lettered",
                key=(_attempt_of(event, view), event.rank),
                attempts=max(view.attempts, event.attempts),
                error=view.error or event.reason,
                finished_at=event.occurred_at,
            )
        case JobCancelled():
            return replace(
                view,
                status="cancelled",
                key=(view.key[0], event.rank),
                error=event.reason,
                finished_at=event.occurred_at,
            )
        case JobRedriven():
            return replace(
                view,
                status="queued",
                key=(_attempt_of(event, view), event.rank),
                site=event.site.value,
                finished_at=None,
                error=None,
            )
    return view


def _fill(view: JobView, event: AnyEvent) -> JobView:
    """Facts an event adds whatever the status: spec fields, attempts, start, progress."""
    if isinstance(event, JobSubmittedEvent):
        return replace(
            view,
            job_type=event.job_type,
            params=event.params,
            priority=view.priority if view.priority is not None else event.priority,
            data_classification=event.data_classification.value,
            max_attempts=event.max_attempts,
            submitted_at=event.occurred_at,
            parent_id=event.parent_id,
        )
    if isinstance(event, JobStarted):
        first = view.started_at is None or event.occurred_at < view.started_at
        return replace(
            view,
            attempts=max(view.attempts, event.attempt),
            site=view.site or event.site.value,
            started_at=event.occurred_at if first else view.started_at,
        )
    if isinstance(event, JobProgress) and event.attempt >= view.attempts:
        return replace(
            view,
            attempts=max(view.attempts, event.attempt),
            progress=event.percent,
            progress_message=event.message,
        )
    if isinstance(event, JobSucceeded):
        return replace(view, attempts=max(view.attempts, event.attempt), progress=100.0)
    return view


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


def fold_onto(view: JobView, events: Iterable[AnyEvent]) -> JobView:
    """Fold events that all sort after every event already in `view` onto it: the same
    view `reduce` gives for all of them, when `view` is not terminal (so not frozen, and not
    a rejection an acceptance could lift) and none of `events` is a `JobRejected`."""
    for event in sorted(events, key=sort_key):
        view = step(view, event)
    return view


def last_key(events: Iterable[AnyEvent]) -> FoldKey:
    """Where a fold of `events` stops: the largest sort key."""
    return max(sort_key(e) for e in events)


def reduce(job_id: UUID, events: Iterable[AnyEvent]) -> JobView:
    """The view of a job from its events, whatever order they arrived in."""
    events = list(events)
    if accepted(events):
        events = [e for e in events if not isinstance(e, JobRejected)]
    first: dict[UUID, AnyEvent] = {}
    for event in sorted(events, key=sort_key):
        first.setdefault(event.event_id, event)  # a duplicate counts once
    return fold_onto(JobView(job_id=job_id), first.values())


def freeze(old: JobView | None, new: JobView, arrived: Iterable[AnyEvent]) -> JobView:
    """Keep a terminal status already shown, unless the new events re-open it (redrive)."""
    if old is None or not old.terminal or old.status == new.status:
        return new
    reopened = old.status == "dead_lettered" and any(isinstance(e, JobRedriven) for e in arrived)
    if reopened or (old.status == "rejected" and accepted(arrived)):
        return new
    return replace(new, status=old.status, finished_at=old.finished_at, key=old.key)
