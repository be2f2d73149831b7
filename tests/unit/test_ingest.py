"""The status use cases on a fake unit of work: projection, dead letters, forgeries."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.status.adapters import wire
from services.status.domain.arrivals import Arrival, Outcome
from services.status.domain.dead_letters import DeadLetter, Ending
from services.status.domain.projection import Fold, freeze, reduce, sort_key
from services.status.service_layer import projecting
from services.status.service_layer.unit_of_work import NewMember
from shared import topology
from shared.contracts import batches
from shared.contracts import events as ev
from shared.contracts.jobs import Site
from shared.dead_letters import DEAD_LETTER_ID_HEADER, JOB_ID_HEADER, REASON_HEADER
from shared.identity import Speaker
from tests.unit.fake_store import FakeStore
from tests.unit.test_projection import competing_terminals, lifecycle

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def routed(job_id: uuid.UUID, site: str = "private") -> list[ev.Event]:
    return [
        ev.JobSubmittedEvent(job_id=job_id, job_type="noop", occurred_at=T0),
        ev.JobRouted(
            job_id=job_id,
            site=site,  # type: ignore[arg-type]
            rule="default",
            reason="r",
            priority=5,
            occurred_at=T0 + timedelta(seconds=1),
        ),
    ]


async def project(store: FakeStore, *arrivals: Arrival) -> list[Outcome]:
    async with store.begin() as uow:
        return await projecting.project(uow, arrivals)


async def grouped(store: FakeStore, *job_ids: uuid.UUID) -> None:
    """Make the jobs members of a group, so the saga coordinator records their endings."""
    async with store.begin() as uow:
        members = [NewMember(j, None, "internal", 5) for j in job_ids]
        await uow.groups.add(uuid.uuid4(), members)


def status(store: FakeStore, job_id: uuid.UUID) -> str:
    return store.views[job_id].fold.view.status


async def test_a_batch_projects_new_events_and_skips_duplicates() -> None:
    store, job_id = FakeStore(), uuid.uuid4()
    events = routed(job_id)
    outcomes = await project(store, *(Arrival(e) for e in events))
    again = await project(store, Arrival(events[1]))
    assert outcomes == [Outcome.PROJECTED, Outcome.PROJECTED]
    assert again == [Outcome.DUPLICATE]
    assert status(store, job_id) == "queued"


async def test_a_worker_of_another_site_cannot_report_on_a_job() -> None:
    store, job_id = FakeStore(), uuid.uuid4()
    await project(store, *(Arrival(e) for e in routed(job_id, "private")))
    forged = ev.JobSucceeded(
        job_id=job_id,
        site="private",  # type: ignore[arg-type]
        attempt=1,
        duration_seconds=0.1,
        occurred_at=T0 + timedelta(seconds=2),
    )
    honest = ev.JobStarted(
        job_id=job_id,
        site="private",  # type: ignore[arg-type]
        attempt=1,
        worker="w",
        occurred_at=T0 + timedelta(seconds=2),
    )
    outcomes = await project(
        store, Arrival(forged, Speaker(Site.PUBLIC)), Arrival(honest, Speaker(Site.PRIVATE))
    )
    assert outcomes == [Outcome.FORBIDDEN, Outcome.PROJECTED]
    assert status(store, job_id) == "running"
    assert forged.event_id not in store.events
    # a worker claiming another site in the event itself is refused too, even unrouted
    other = uuid.uuid4()
    claim = ev.JobStarted(job_id=other, site="private", attempt=1, worker="w")  # type: ignore[arg-type]
    assert await project(store, Arrival(claim, Speaker(Site.PUBLIC))) == [Outcome.FORBIDDEN]
    # the status service and the router are not restricted
    cancel = ev.JobCancelled(job_id=job_id, reason="stop", occurred_at=T0 + timedelta(seconds=3))
    assert await project(store, Arrival(cancel)) == [Outcome.PROJECTED]


async def test_a_rejected_copy_never_changes_an_accepted_job_in_the_same_batch() -> None:
    store, job_id = FakeStore(), uuid.uuid4()
    copy = ev.JobRejected(job_id=job_id, reason="malformed copy", occurred_at=T0)
    await project(store, *(Arrival(e) for e in [copy, *routed(job_id)]))
    assert status(store, job_id) == "queued"


def letter(job_id: uuid.UUID | None, ending: Ending, **extra: object) -> DeadLetter:
    return DeadLetter(
        id=str(uuid.uuid4()),
        job_id=job_id,
        reason="delivery_limit",
        dead_lettered_at=T0 + timedelta(seconds=5),
        body="{}",
        raw_body=b"{}",
        ending=ending,
        **extra,  # type: ignore[arg-type]
    )


async def record(store: FakeStore, dead: DeadLetter) -> bool:
    async with store.begin() as uow:
        return await projecting.record_dead_letter(uow, dead)


async def test_a_dead_letter_ends_its_job_in_the_same_transaction() -> None:
    store, job_id = FakeStore(), uuid.uuid4()
    await grouped(store, job_id)
    await project(store, *(Arrival(e) for e in routed(job_id)))
    dead = letter(job_id, Ending.DEAD_LETTER)
    assert await record(store, dead) is True
    assert await record(store, dead) is False  # the same dead letter again: nothing new
    assert status(store, job_id) == "dead_lettered"
    assert store.ended_members == [(job_id, "dead_lettered")]
    assert len(store.events) == 3  # one JobDeadLettered, its id derived from the letter's


async def test_a_dead_letter_does_not_touch_a_terminal_job_or_an_event_copy() -> None:
    store, done, running = FakeStore(), uuid.uuid4(), uuid.uuid4()
    await grouped(store, done, running)
    cancel = ev.JobCancelled(job_id=done, reason="stop", occurred_at=T0)
    await project(store, Arrival(cancel), *(Arrival(e) for e in routed(running)))
    assert store.ended_members == [(done, "cancelled")]  # the projection saw it end
    await record(store, letter(done, Ending.DEAD_LETTER))
    await record(store, letter(running, Ending.NONE))
    await record(store, letter(running, Ending.REJECT))  # a malformed copy
    assert (status(store, done), status(store, running)) == ("cancelled", "queued")
    assert len(store.dead_letters) == 3
    assert store.ended_members == [(done, "cancelled")]  # no further ending


async def test_the_projection_reports_each_ending_once_in_its_transaction() -> None:
    """The saga coordinator learns of a member's ending from the transaction that shows it
    terminal: once, with the status shown, never for a job still running or a duplicate."""
    store, job_id, other = FakeStore(), uuid.uuid4(), uuid.uuid4()
    await grouped(store, job_id, other)
    await project(
        store, *(Arrival(e) for e in routed(job_id)), *(Arrival(e) for e in routed(other))
    )
    assert store.ended_members == []
    started = ev.JobStarted(job_id=job_id, site="private", attempt=1, worker="w", occurred_at=T0)
    done = ev.JobSucceeded(
        job_id=job_id, site="private", attempt=1, duration_seconds=0.1, occurred_at=T0
    )
    await project(store, Arrival(started), Arrival(done))
    await project(store, Arrival(done))  # a duplicate
    late = ev.JobCancelled(job_id=job_id, reason="too late", occurred_at=T0)
    await project(store, Arrival(late))  # after the end: the view stays succeeded
    assert store.ended_members == [(job_id, "succeeded")]
    assert status(store, job_id) == "succeeded"


async def test_a_forged_dead_letter_cannot_end_another_sites_job() -> None:
    store, job_id = FakeStore(), uuid.uuid4()
    await project(store, *(Arrival(e) for e in routed(job_id, "private")))
    await record(store, letter(job_id, Ending.DEAD_LETTER, publisher=Site.PUBLIC))
    assert status(store, job_id) == "queued"


async def test_a_broker_dead_letter_with_no_view_yet_still_ends_the_job() -> None:
    store, job_id = FakeStore(), uuid.uuid4()
    await record(store, letter(job_id, Ending.DEAD_LETTER))
    assert status(store, job_id) == "dead_lettered"


@pytest.mark.parametrize(
    ("headers", "source", "ending"),
    [
        (
            {"x-death": [{"queue": "jobs.public", "reason": "delivery_limit"}]},
            None,
            Ending.DEAD_LETTER,
        ),
        # the router's own JobRejected (with field errors) decides for intake messages
        ({REASON_HEADER: "schema"}, "jobs.router.intake", Ending.NONE),
        ({REASON_HEADER: "schema"}, "jobs.router.due", Ending.REJECT),
        ({REASON_HEADER: "schema"}, topology.STATUS_EVENTS.name, Ending.NONE),
        ({REASON_HEADER: "forbidden"}, topology.STATUS_EVENTS.name, Ending.NONE),
        ({REASON_HEADER: "residency"}, "jobs.public", Ending.DEAD_LETTER),
    ],
)
def test_which_dead_letters_end_their_job(
    headers: dict[str, object], source: str | None, ending: Ending
) -> None:
    if source:
        headers = {**headers, "x-hybridq-source-queue": source}
    job_id = uuid.uuid4()
    dead = wire.read_dead_letter(f'{{"job_id": "{job_id}"}}'.encode(), headers, None, None)
    assert (dead.job_id, dead.ending) == (job_id, ending)


HOSTILE_BODIES = [
    b'{"job_id": "x\\u0000", "p": "\\u0000\\ud800"}',
    b"\xff\xfe not utf-8 \x00",
    b"[" * 100_000 + b"]" * 100_000,
    b"not json at all",
    b'{"a": NaN, "b": Infinity}',
]


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_hostile_dead_letters_are_storable(body: bytes) -> None:
    imitation = {
        JOB_ID_HEADER: "not-a-uuid\x00",
        DEAD_LETTER_ID_HEADER: {"nested": ["deep"]},
        REASON_HEADER: "r\x00" * 500,
        "x-hybridq-dead-lettered-at": "yesterday",
        "x-death": 5,
    }
    dead = wire.read_dead_letter(body, imitation, "\x00", "hybridq-public-worker")
    assert "\x00" not in dead.body + dead.reason + str(dead.headers)
    assert dead.raw_body == body[: wire.MAX_STORED_BODY]
    assert dead.job_id is None
    assert len(dead.reason) <= 200
    uuid.UUID(dead.id)
    assert dead.dead_lettered_at.tzinfo is not None


@pytest.mark.parametrize("body", [*HOSTILE_BODIES, b"{" * 10 + b"x" * (2 << 20)])
def test_hostile_events_are_unreadable_with_a_reason(body: bytes) -> None:
    try:
        items = wire.read_events(body)
    except wire.Unreadable as exc:  # the message as a whole
        reasons = {exc.reason}
    else:  # read, but its event is not one
        assert all(isinstance(i, batches.Unreadable) for i in items), items
        reasons = {i.reason for i in items if isinstance(i, batches.Unreadable)}
    assert reasons <= {"malformed_json", "schema", "oversize"}
    assert reasons


def test_a_nul_in_submitted_params_is_kept_storable() -> None:
    job_id = uuid.uuid4()
    body = ev.JobSubmittedEvent(
        job_id=job_id, job_type="noop", params={"k\x00": "v\x00", "n": [1, "\x00"]}
    ).model_dump_json()
    (event,) = wire.read_events(body.encode())
    assert isinstance(event, ev.JobSubmittedEvent)
    assert event.params == {"k\ufffd": "v\ufffd", "n": [1, "\ufffd"]}


def _reference_views(events: list[ev.Event], sizes: list[int]) -> list[Fold]:
    """What the projection shows after each batch when it re-reads the whole history."""
    view: Fold | None = None
    so_far: list[ev.Event] = []
    shown = []
    for chunk in _chunks(events, sizes):
        so_far += chunk
        view = freeze(view, reduce(events[0].job_id, so_far), chunk)  # type: ignore[arg-type]
        shown.append(view)
    return shown


def _chunks(events: list[ev.Event], sizes: list[int]) -> list[list[ev.Event]]:
    out, i, it = [], 0, iter(sizes)
    while i < len(events):
        size = max(1, next(it, 1))
        out.append(events[i : i + size])
        i += size
    return out


async def _project_in_batches(events: list[ev.Event], sizes: list[int]) -> tuple[list[Fold], int]:
    store = FakeStore()
    shown = []
    for chunk in _chunks(events, sizes):
        await project(store, *(Arrival(e) for e in chunk))  # type: ignore[arg-type]
        shown.append(store.views[events[0].job_id].fold)
    return shown, store.history_reads


@settings(max_examples=200, deadline=None)
@given(data=st.data(), events=st.one_of(lifecycle(), competing_terminals()))
def test_folding_onto_the_stored_view_shows_what_a_full_refold_shows(
    data: st.DataObject, events: list[ev.Event]
) -> None:
    """After every batch, in any arrival order, with duplicates and competing endings, the
    stored view equals the view re-folded from the job's whole history."""
    extra = data.draw(st.lists(st.sampled_from(events), max_size=3))
    arrival = list(data.draw(st.permutations(events + extra)))
    sizes = data.draw(st.lists(st.integers(1, 4), max_size=len(arrival)))
    shown, _ = asyncio.run(_project_in_batches(arrival, sizes))
    assert shown == _reference_views(arrival, sizes)


@settings(max_examples=50, deadline=None)
@given(events=lifecycle(), data=st.data())
def test_events_in_order_never_reread_the_history(
    events: list[ev.Event], data: st.DataObject
) -> None:
    """A job's first batch has no history to read, and later batches in order fold onto
    the stored view: the history is read only for what arrives out of order."""
    events = [e for e in events if not isinstance(e, ev.JobRejected)]
    sizes = data.draw(st.lists(st.integers(1, 4), max_size=len(events)))
    shown, rereads = asyncio.run(_project_in_batches(events, sizes))
    ordered = sorted(events, key=sort_key) == events
    if ordered and not any(v.terminal for v in shown[:-1]):
        assert rereads == 0
    assert shown[-1] == reduce(events[0].job_id, events)  # type: ignore[arg-type]
