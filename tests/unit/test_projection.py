"""The job state machine: any shuffle or duplication of a job's events gives the in-order view."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.status.projection import JobView, freeze, reduce
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
            return out
        if ending == "cancelled":
            out.append(ev.JobCancelled(job_id=job_id, reason="stop", occurred_at=next(clock)))
            return out
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


def apply_in_arrival_order(events: list[ev.Event], chunk_sizes: list[int]) -> JobView:
    """What the store does: each batch re-reduces all events so far, then freezes."""
    job_id = events[0].job_id
    view: JobView | None = None
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
    assert apply_in_arrival_order(list(arrival), chunks) == in_order


@given(events=lifecycle())
def test_in_order_views_follow_the_lifecycle(events: list[ev.Event]) -> None:
    view = reduce(events[0].job_id, events)  # type: ignore[arg-type]
    last = events[-1]
    expected = {"JobSucceeded": "succeeded", "JobCancelled": "cancelled", "JobRedriven": "queued"}[
        last.type
    ]
    assert view.status == expected
    attempts = [e.attempt for e in events if isinstance(e, ev.JobStarted)]
    assert view.attempts == max(attempts, default=0)
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
    view = freeze(None, reduce(job_id, [started, cancelled]), [started, cancelled])
    assert view.status == "cancelled"
    later = freeze(view, reduce(job_id, [started, cancelled, late_success]), [late_success])
    assert later.status == "cancelled"
    assert later.finished_at == cancelled.occurred_at


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
    view = reduce(job_id, [started, routed_late_clock])
    assert (view.status, view.rule) == ("running", "explicit")
