"""The job state machine: any shuffle or duplication of a job's events gives the in-order view."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.status.domain.projection import Fold, accepted, freeze, reduce, sort_key
from shared.contracts import events as ev

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@st.composite
def lifecycle(draw: st.DrawFn) -> list[ev.Event]:
    """A real job's events, in the order they happened."""
    job_id = uuid.uuid4()
    clock = iter(T0 + timedelta(milliseconds=10 * i) for i in range(1000))
    out: list[ev.Event] = [
        ev.JobSubmittedEvent(job_id=job_id, job_type="noop", occurred_at=next(clock))
    ]
    if draw(st.booleans()):
        out.append(
            ev.JobScheduled(
                job_id=job_id,
                site="private",  # type: ignore[arg-type]
                not_before=T0,
                occurred_at=next(clock),
            )
        )
    out.append(
        ev.JobRouted(
            job_id=job_id,
            site="private",
            rule="default",  # type: ignore[arg-type]
            reason="r",
            priority=5,
            occurred_at=next(clock),
        )
    )
    attempt = 0
    for _round in range(draw(st.integers(0, 1)) + 1):
        failures = draw(st.integers(0, 3))
        for _ in range(failures):
            attempt += 1
            out += _attempt(job_id, attempt, clock, draw(st.integers(0, 2)))
            out.append(
                ev.JobFailed(
                    job_id=job_id,
                    site="private",
                    attempt=attempt,  # type: ignore[arg-type]
                    error="e",
                    retry_at=T0,
                    occurred_at=next(clock),
                )
            )
        ending = draw(st.sampled_from(["succeeded", "dead_lettered", "cancelled"]))
        if ending == "succeeded":
            attempt += 1
            out += _attempt(job_id, attempt, clock, draw(st.integers(0, 2)))
            out.append(
                ev.JobSucceeded(
                    job_id=job_id,
                    site="private",
                    attempt=attempt,  # type: ignore[arg-type]
                    result={"n": attempt},
                    duration_seconds=0.01,
                    occurred_at=next(clock),
                )
            )
            return out + late_events(draw, job_id, attempt, clock)
        if ending == "cancelled":
            out.append(ev.JobCancelled(job_id=job_id, reason="stop", occurred_at=next(clock)))
            return out + late_events(draw, job_id, attempt, clock)
        attempt += 1
        out += _attempt(job_id, attempt, clock, 0)
        out.append(
            ev.JobFailed(
                job_id=job_id,
                site="private",
                attempt=attempt,  # type: ignore[arg-type]
                error="boom",
                occurred_at=next(clock),
            )
        )
        out.append(
            ev.JobDeadLettered(
                job_id=job_id, reason="max_attempts", attempts=attempt, occurred_at=next(clock)
            )
        )
        out.append(
            ev.JobRedriven(
                job_id=job_id,
                site="public",  # type: ignore[arg-type]
                dead_letter_id="d",
                next_attempt=attempt + 1,
                occurred_at=next(clock),
            )
        )
    return out


def late_events(
    draw: st.DrawFn, job_id: uuid.UUID, attempt: int, clock: object, terminals: bool = False
) -> list[ev.Event]:
    """What can still arrive after a job ended, stamped later: a worker that had not seen
    the cancel, a duplicate delivery's attempt, a malformed copy (and, with `terminals`,
    a late success or cancel)."""
    tick = clock.__next__  # type: ignore[attr-defined]
    site: Any = "private"
    choices = ["started", "progress", "failed", "reject"]
    if terminals:
        choices += ["succeeded", "cancel"]
    kinds = draw(st.lists(st.sampled_from(choices), max_size=4))
    out: list[ev.Event] = []
    for kind in kinds:
        n = attempt + 1
        if kind == "started":
            out.append(
                ev.JobStarted(job_id=job_id, site=site, attempt=n, worker="w", occurred_at=tick())
            )  # type: ignore[arg-type]
        elif kind == "progress":
            out.append(ev.JobProgress(job_id=job_id, attempt=n, percent=10, occurred_at=tick()))
        elif kind == "succeeded":
            out.append(
                ev.JobSucceeded(
                    job_id=job_id, site=site, attempt=n, duration_seconds=1, occurred_at=tick()
                )
            )  # type: ignore[arg-type]
        elif kind == "failed":
            out.append(
                ev.JobFailed(
                    job_id=job_id,
                    site=site,
                    attempt=n,
                    error="late",
                    retry_at=T0,
                    occurred_at=tick(),
                )
            )  # type: ignore[arg-type]
        elif kind == "cancel":
            out.append(ev.JobCancelled(job_id=job_id, reason="late", occurred_at=tick()))
        else:
            out.append(ev.JobRejected(job_id=job_id, reason="malformed copy", occurred_at=tick()))
    return out


def ending_of(events: list[ev.Event]) -> tuple[str, datetime | None]:
    """The status and finish time the job must show: its first ending, whatever follows
    (a redrive re-opens a dead-lettered job)."""
    status, finished = "queued", None
    for event in events:
        if status in ("succeeded", "cancelled"):
            break
        if isinstance(event, ev.JobSucceeded):
            status, finished = "succeeded", event.occurred_at
        elif isinstance(event, ev.JobCancelled):
            status, finished = "cancelled", event.occurred_at
        elif isinstance(event, ev.JobRedriven):
            status, finished = "queued", None
    return status, finished


def _attempt(job_id: uuid.UUID, n: int, clock: object, progress: int) -> list[ev.Event]:
    tick = clock.__next__  # type: ignore[attr-defined]
    out: list[ev.Event] = [
        ev.JobStarted(
            job_id=job_id,
            site="private",
            attempt=n,  # type: ignore[arg-type]
            worker="w",
            occurred_at=tick(),
        )
    ]
    out += [
        ev.JobProgress(job_id=job_id, attempt=n, percent=50 * (i + 1), occurred_at=tick())
        for i in range(progress)
    ]
    return out


def apply_in_arrival_order(events: list[ev.Event], chunk_sizes: list[int]) -> Fold:
    """What the store does: each batch re-reduces all events so far, then freezes."""
    job_id = events[0].job_id
    view: Fold | None = None
    so_far: list[ev.Event] = []
    i, sizes = 0, iter(chunk_sizes)
    while i < len(events):
        chunk = events[i : i + max(1, next(sizes, 1))]
        i += len(chunk)
        so_far += chunk
        view = freeze(view, reduce(job_id, so_far), chunk)  # type: ignore[arg-type]
    assert view is not None
    return view


@settings(max_examples=300, deadline=None)
@given(data=st.data(), events=lifecycle())
def test_any_arrival_order_gives_the_in_order_view(
    data: st.DataObject, events: list[ev.Event]
) -> None:
    in_order = reduce(events[0].job_id, events)  # type: ignore[arg-type]
    duplicated = events + data.draw(st.lists(st.sampled_from(events), max_size=5))
    arrival = data.draw(st.permutations(duplicated))
    chunks = data.draw(st.lists(st.integers(1, 4), max_size=len(arrival)))
    fold = apply_in_arrival_order(list(arrival), chunks)
    assert fold == in_order
    assert (fold.view.status, fold.view.finished_at) == ending_of(events)


@given(events=lifecycle())
def test_in_order_views_follow_the_lifecycle(events: list[ev.Event]) -> None:
    view = reduce(events[0].job_id, events).view  # type: ignore[arg-type]
    assert (view.status, view.finished_at) == ending_of(events)
    attempts = [e.attempt for e in events if isinstance(e, ev.JobStarted)]
    assert view.attempts >= max(attempts, default=0)
    assert view.submitted_at == T0
    if attempts:
        assert view.started_at == min(e.occurred_at for e in events if isinstance(e, ev.JobStarted))


def test_terminal_status_never_changes_for_late_competing_events() -> None:
    job_id = uuid.uuid4()
    started = ev.JobStarted(
        job_id=job_id,
        site="private",
        attempt=1,
        worker="w",  # type: ignore[arg-type]
        occurred_at=T0,
    )
    cancelled = ev.JobCancelled(job_id=job_id, reason="stop", occurred_at=T0 + timedelta(seconds=2))
    late_success = ev.JobSucceeded(
        job_id=job_id,
        site="private",
        attempt=1,  # type: ignore[arg-type]
        duration_seconds=1,
        occurred_at=T0 + timedelta(seconds=1),
    )
    fold = freeze(None, reduce(job_id, [started, cancelled]), [started, cancelled])
    assert fold.view.status == "cancelled"
    later = freeze(fold, reduce(job_id, [started, cancelled, late_success]), [late_success])
    assert later.view.status == "cancelled"
    assert later.view.finished_at == cancelled.occurred_at


def test_clock_skew_does_not_move_a_job_backwards() -> None:
    job_id = uuid.uuid4()
    routed_late_clock = ev.JobRouted(
        job_id=job_id,
        site="public",
        rule="explicit",  # type: ignore[arg-type]
        reason="r",
        priority=5,
        occurred_at=T0 + timedelta(seconds=5),
    )
    started = ev.JobStarted(
        job_id=job_id,
        site="public",
        attempt=1,
        worker="w",  # type: ignore[arg-type]
        occurred_at=T0,
    )
    view = reduce(job_id, [started, routed_late_clock]).view
    assert (view.status, view.rule) == ("running", "explicit")


ENDINGS = {
    "JobSucceeded": "succeeded",
    "JobCancelled": "cancelled",
    "JobDeadLettered": "dead_lettered",
}


@st.composite
def competing_terminals(draw: st.DrawFn) -> list[ev.Event]:
    """A running job that two services end at about the same time, each by its own clock
    (skewed up to 2 s either way), followed by late events."""
    job_id = uuid.uuid4()
    started = ev.JobStarted(job_id=job_id, site="private", attempt=1, worker="w", occurred_at=T0)  # type: ignore[arg-type]
    skew = [timedelta(milliseconds=draw(st.integers(1, 2000))) for _ in range(3)]
    endings: list[ev.Event] = [
        ev.JobSucceeded(
            job_id=job_id, site="private", attempt=1, duration_seconds=1, occurred_at=T0 + skew[0]
        ),  # type: ignore[arg-type]
        ev.JobCancelled(job_id=job_id, reason="stop", occurred_at=T0 + skew[1]),
        ev.JobDeadLettered(
            job_id=job_id, reason="max_attempts", attempts=1, occurred_at=T0 + skew[2]
        ),
    ]
    chosen = draw(
        st.lists(st.sampled_from(endings), min_size=2, max_size=3, unique_by=lambda e: e.type)
    )
    clock = iter(T0 + timedelta(seconds=3 + i) for i in range(100))
    return [started, *chosen, *late_events(draw, job_id, 1, clock, terminals=True)]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), events=competing_terminals())
def test_a_terminal_status_shown_never_changes_whatever_arrives_next(
    data: st.DataObject, events: list[ev.Event]
) -> None:
    """Across batches and within one: the first terminal status shown stays, against later
    events and against a competing terminal stamped earlier (only a rejection seen before
    the job's acceptance gives way to it: a malformed copy never changes an accepted job)."""
    arrival = data.draw(st.permutations(events))
    sizes = data.draw(st.lists(st.integers(1, 4), min_size=len(arrival)))
    job_id = events[0].job_id
    fold: Fold | None = None
    so_far: list[ev.Event] = []
    shown: str | None = None
    i = 0
    for size in sizes:
        chunk = list(arrival[i : i + size])
        if not chunk:
            break
        i += len(chunk)
        so_far += chunk
        fold = freeze(fold, reduce(job_id, so_far), chunk)  # type: ignore[arg-type]
        view = fold.view
        if view.status == "rejected":  # a malformed copy, seen before any acceptance
            assert not accepted(so_far)
        elif shown is not None:
            assert view.status == shown
        elif view.terminal:  # the first ending shown: the earliest-stamped one so far
            shown = view.status
            first = min((e for e in so_far if e.type in ENDINGS), key=sort_key)
            assert (shown, view.finished_at) == (ENDINGS[first.type], first.occurred_at)
    assert fold is not None
    assert fold.terminal
