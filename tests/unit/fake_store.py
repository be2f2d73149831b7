"""An in-memory unit of work: the status use cases run on it exactly as on Postgres.

Every repository of services/status/service_layer/unit_of_work.py, on plain dicts. A unit
of work works on a copy of the store's state and swaps it in on a clean exit, so a use case
that raises changes nothing (all or nothing, as a transaction). Locks are no-ops: one
event loop, no concurrency inside a transaction.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from services.status.domain.dead_letters import DeadLetter
from services.status.domain.redrive import Candidate
from services.status.domain.saga import Member
from services.status.domain.views import TERMINAL, JobStatus
from services.status.domain.webhooks import Webhook
from services.status.service_layer.unit_of_work import (
    AlreadyGrouped,
    Attempt,
    Delivery,
    Lease,
    NewMember,
    RedriveSelection,
    Schedule,
    StoredFold,
)
from shared.contracts.events import AnyEvent
from shared.contracts.workers import AttemptLeased, WorkerHeartbeat
from shared.messages import Envelope


@dataclass
class Letter:
    letter: DeadLetter
    seq: int
    redriven: bool = False


@dataclass
class LeaseRow:
    message: AttemptLeased
    renewed_at: datetime


@dataclass
class OutboxRow:
    seq: int
    envelope: Envelope
    origin: str | None
    created_at: datetime
    sent_at: datetime | None = None


@dataclass
class DeliveryRow:
    delivery_id: int
    webhook_id: UUID
    event: AnyEvent
    body: str
    queued_at: datetime
    next_try_at: datetime
    state: str = "pending"
    failures: int = 0
    lease_until: datetime | None = None
    lease_token: UUID | None = None

    def order(self) -> tuple[datetime, int, str]:
        return (self.event.occurred_at, self.event.rank, str(self.event.event_id))


@dataclass
class State:
    events: dict[UUID, AnyEvent] = field(default_factory=dict)
    folds: dict[UUID, StoredFold] = field(default_factory=dict)
    dead_letters: dict[str, Letter] = field(default_factory=dict)
    groups: dict[UUID, datetime | None] = field(default_factory=dict)  # -> settled_at
    members: dict[UUID, tuple[UUID, int, Member]] = field(default_factory=dict)
    schedules: dict[UUID, Schedule] = field(default_factory=dict)
    firings: dict[UUID, tuple[UUID, datetime]] = field(default_factory=dict)
    leases: dict[tuple[UUID, int, UUID], LeaseRow] = field(default_factory=dict)
    workers: dict[UUID, tuple[WorkerHeartbeat, datetime]] = field(default_factory=dict)
    outbox: list[OutboxRow] = field(default_factory=list)
    recorded: list[tuple[UUID, str]] = field(default_factory=list)  # members' endings, in order
    webhooks: dict[UUID, Webhook] = field(default_factory=dict)
    deliveries: list[DeliveryRow] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    seq: int = 0


class FakeStore:
    def __init__(self, clock: Any = None) -> None:
        self.state = State()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.history_reads = 0  # jobs whose whole history a projection re-read
        self.commits = 0

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[FakeUnitOfWork]:
        """All or nothing: changes become visible only if the block ends cleanly."""
        uow = FakeUnitOfWork(self, copy.deepcopy(self.state))
        yield uow
        self.state = uow.state
        self.commits += 1

    # what tests look at
    @property
    def views(self) -> dict[UUID, StoredFold]:
        return self.state.folds

    @property
    def ended_members(self) -> list[tuple[UUID, str]]:
        """Group members' endings as the saga coordinator recorded them, in order."""
        return self.state.recorded

    @property
    def events(self) -> dict[UUID, AnyEvent]:
        return self.state.events

    @property
    def dead_letters(self) -> dict[str, Letter]:
        return self.state.dead_letters

    def unsent(self) -> list[Envelope]:
        return [r.envelope for r in self.state.outbox if r.sent_at is None]


class _Repo:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    @property
    def s(self) -> State:
        return self.uow.state

    def now(self) -> datetime:
        now: datetime = self.uow.store.clock()
        return now

    def next_seq(self) -> int:
        self.s.seq += 1
        return self.s.seq


class FakeJobs(_Repo):
    async def lock(self, ids: Sequence[UUID]) -> None:
        return None

    async def folds(self, ids: Sequence[UUID]) -> dict[UUID, StoredFold]:
        return {i: self.s.folds[i] for i in ids if i in self.s.folds}

    async def add_events(self, events: Sequence[AnyEvent]) -> set[UUID]:
        new = {e.event_id for e in events if e.event_id not in self.s.events}
        self.s.events.update({e.event_id: e for e in events if e.event_id in new})
        return new

    async def histories(self, ids: Sequence[UUID]) -> dict[UUID, list[AnyEvent]]:
        self.uow.store.history_reads += len(ids)
        return {i: [e for e in self.s.events.values() if e.job_id == i] for i in ids}

    async def save(self, folds: Sequence[StoredFold]) -> None:
        self.s.folds.update({f.fold.view.job_id: f for f in folds})

    async def purge_finished(self, before: datetime, limit: int) -> int:
        old = [
            j
            for j, f in self.s.folds.items()
            if f.fold.view.status in TERMINAL
            and f.fold.view.finished_at is not None
            and f.fold.view.finished_at < before
        ][:limit]
        for job_id in old:
            del self.s.folds[job_id]
            self.s.events = {k: e for k, e in self.s.events.items() if e.job_id != job_id}
            self.s.dead_letters = {
                k: v for k, v in self.s.dead_letters.items() if v.letter.job_id != job_id
            }
        return len(old)


class FakeDeadLetters(_Repo):
    async def add(self, letter: DeadLetter) -> bool:
        if letter.id in self.s.dead_letters:
            return False
        self.s.dead_letters[letter.id] = Letter(letter, self.next_seq())
        return True

    async def candidates(self, selection: RedriveSelection) -> list[Candidate]:
        found = [
            row
            for row in sorted(self.s.dead_letters.values(), key=lambda r: r.seq)
            if not row.redriven
            and (selection.ids is None or row.letter.id in selection.ids)
            and (selection.reason is None or row.letter.reason == selection.reason)
            and (selection.job_type is None or row.letter.job_type == selection.job_type)
        ]
        return [
            Candidate(r.letter.id, r.letter.reason, r.letter.body) for r in found[: selection.limit]
        ]

    async def claim(self, ids: Sequence[str]) -> list[str]:
        got = []
        for row in sorted(self.s.dead_letters.values(), key=lambda r: r.seq):
            if row.letter.id in ids and not row.redriven:
                row.redriven = True
                got.append(row.letter.id)
        return got

    async def purge(self, before: datetime, limit: int) -> int:
        old = [k for k, v in self.s.dead_letters.items() if v.letter.dead_lettered_at < before]
        for key in old[:limit]:
            del self.s.dead_letters[key]
        return len(old[:limit])


class FakeGroups(_Repo):
    async def add(self, group_id: UUID, members: Sequence[NewMember]) -> None:
        taken = [m.job_id for m in members if m.job_id in self.s.members]
        if taken:
            raise AlreadyGrouped(taken)
        self.s.groups[group_id] = None
        for i, m in enumerate(members):
            member = Member(
                m.job_id, m.compensation, None, None, None, m.data_classification, m.priority
            )
            self.s.members[m.job_id] = (group_id, i, member)

    async def open_members(self, job_ids: Sequence[UUID]) -> set[UUID]:
        return {j for j in job_ids if j in self.s.members and self.s.members[j][2].outcome is None}

    async def lock_group_of(self, job_id: UUID) -> UUID | None:
        found = self.s.members.get(job_id)
        return found[0] if found and found[2].outcome is None else None

    async def record_outcome(self, job_id: UUID, outcome: str, site: str | None) -> bool:
        group_id, position, member = self.s.members[job_id]
        if member.outcome is not None:
            return False
        self.s.members[job_id] = (
            group_id,
            position,
            replace(member, outcome=outcome, site=site or member.site),
        )
        self.s.recorded.append((job_id, outcome))
        return True

    async def members(self, group_id: UUID) -> list[Member]:
        found = [(p, m) for g, p, m in self.s.members.values() if g == group_id]
        return [m for _, m in sorted(found, key=lambda pm: pm[0])]

    async def set_compensation(self, job_id: UUID, compensation_job_id: UUID) -> None:
        group_id, position, member = self.s.members[job_id]
        self.s.members[job_id] = (
            group_id,
            position,
            replace(member, compensation_job_id=compensation_job_id),
        )

    async def settle(self, group_id: UUID) -> None:
        self.s.groups[group_id] = self.now()

    async def ended_unrecorded(self, limit: int) -> list[tuple[UUID, str, str | None]]:
        ended = []
        for job_id, (_, _, member) in self.s.members.items():
            stored = self.s.folds.get(job_id)
            if member.outcome is None and stored is not None and stored.fold.terminal:
                view = stored.fold.view
                ended.append((job_id, view.status.value, view.site.value if view.site else None))
        return ended[:limit]

    async def purge_settled(self, before: datetime, limit: int) -> int:
        old = [g for g, at in self.s.groups.items() if at is not None and at < before][:limit]
        for group_id in old:
            del self.s.groups[group_id]
            self.s.members = {j: v for j, v in self.s.members.items() if v[0] != group_id}
        return len(old)


class FakeSchedules(_Repo):
    async def add(self, schedule: Schedule) -> None:
        self.s.schedules[schedule.schedule_id] = schedule

    async def get(self, schedule_id: UUID, *, for_update: bool = False) -> Schedule | None:
        return self.s.schedules.get(schedule_id)

    async def set_enabled(
        self, schedule_id: UUID, enabled: bool, next_run_at: datetime | None
    ) -> None:
        old = self.s.schedules[schedule_id]
        self.s.schedules[schedule_id] = replace(old, enabled=enabled, next_run_at=next_run_at)

    async def delete(self, schedule_id: UUID) -> bool:
        return self.s.schedules.pop(schedule_id, None) is not None

    async def due(self, now: datetime, limit: int) -> list[Schedule]:
        due = [
            s
            for s in self.s.schedules.values()
            if s.enabled and s.next_run_at is not None and s.next_run_at <= now
        ]
        return sorted(due, key=lambda s: s.next_run_at or now)[:limit]

    async def claim(
        self, schedule: Schedule, next_run_at: datetime | None, fired: datetime
    ) -> bool:
        current = self.s.schedules.get(schedule.schedule_id)
        if current is None or not current.enabled or current.next_run_at != schedule.next_run_at:
            return False
        self.s.schedules[schedule.schedule_id] = replace(
            current, next_run_at=next_run_at, last_run_at=fired
        )
        return True

    async def add_firing(self, schedule_id: UUID, job_id: UUID, fire_time: datetime) -> None:
        self.s.firings.setdefault(job_id, (schedule_id, fire_time))

    async def purge_firings(self, before: datetime, limit: int) -> int:
        old = [j for j, (_, at) in self.s.firings.items() if at < before][:limit]
        for job_id in old:
            del self.s.firings[job_id]
        return len(old)


class FakeLeases(_Repo):
    async def add(self, message: AttemptLeased) -> None:
        key = (message.job.job_id, message.job.attempt, message.instance)
        self.s.leases.setdefault(key, LeaseRow(message, self.now()))

    async def renew(self, instance: UUID, held: Sequence[tuple[UUID, int]]) -> None:
        for job_id, attempt in held:
            row = self.s.leases.get((job_id, attempt, instance))
            if row is not None:
                row.renewed_at = self.now()

    async def release(self, job_id: UUID, attempt: int, instance: UUID) -> None:
        self.s.leases.pop((job_id, attempt, instance), None)

    async def lapsed(self, healthy_for: float, limit: int) -> list[Lease]:
        now, found = self.now(), []
        for row in self.s.leases.values():
            m = row.message
            age = (now - row.renewed_at).total_seconds()
            if age <= m.lease_seconds or m.lease_seconds > healthy_for:
                continue
            stored = self.s.folds.get(m.job.job_id)
            running = (
                stored is not None
                and stored.fold.view.status is JobStatus.RUNNING
                and stored.fold.view.attempts == m.job.attempt
            )
            found.append(
                Lease(
                    m.job,
                    m.instance,
                    m.worker,
                    m.retry_base_seconds,
                    m.retry_max_seconds,
                    running,
                )
            )
        return found[:limit]

    async def delete(self, lease: Lease) -> None:
        await self.release(lease.job.job_id, lease.job.attempt, lease.instance)


class FakeWorkers(_Repo):
    async def heartbeat(self, message: WorkerHeartbeat) -> None:
        self.s.workers[message.instance] = (message, self.now())

    async def forget(self, older_than_days: float) -> None:
        now = self.now()
        self.s.workers = {
            k: (m, at)
            for k, (m, at) in self.s.workers.items()
            if (now - at).total_seconds() < older_than_days * 86400
        }


class FakeOutbox(_Repo):
    async def add(self, envelope: Envelope, origin: str | None = None) -> int:
        seq = self.next_seq()
        self.s.outbox.append(OutboxRow(seq, envelope, origin, self.now()))
        return seq

    async def withdraw(self, origin: str) -> int:
        before = len(self.s.outbox)
        self.s.outbox = [r for r in self.s.outbox if r.origin != origin or r.sent_at is not None]
        return before - len(self.s.outbox)

    async def purge_sent(self, before: datetime, limit: int) -> int:
        old = [r for r in self.s.outbox if r.sent_at is not None and r.sent_at < before][:limit]
        self.s.outbox = [r for r in self.s.outbox if r not in old]
        return len(old)


class FakeWebhooks(_Repo):
    async def add(self, hook: Webhook) -> None:
        self.s.webhooks[hook.webhook_id] = hook

    async def all(self) -> list[Webhook]:
        return sorted(self.s.webhooks.values(), key=lambda h: h.created_at)

    async def get(self, webhook_id: UUID) -> Webhook | None:
        return self.s.webhooks.get(webhook_id)

    async def delete(self, webhook_id: UUID) -> bool:
        self.s.deliveries = [d for d in self.s.deliveries if d.webhook_id != webhook_id]
        self.s.attempts = [a for a in self.s.attempts if a.webhook_id != webhook_id]
        return self.s.webhooks.pop(webhook_id, None) is not None

    async def queue(self, pairs: Sequence[tuple[Webhook, AnyEvent]]) -> None:
        have = {(d.webhook_id, d.event.event_id) for d in self.s.deliveries}
        for hook, event in pairs:
            if (hook.webhook_id, event.event_id) not in have:
                now = self.now()
                self.s.deliveries.append(
                    DeliveryRow(
                        self.next_seq(), hook.webhook_id, event, event.model_dump_json(), now, now
                    )
                )

    async def claim(
        self, webhook_id: UUID, now: datetime, lease_until: datetime, token: UUID, limit: int
    ) -> list[Delivery]:
        pending = [
            d for d in self.s.deliveries if d.webhook_id == webhook_id and d.state == "pending"
        ]
        heads = {}
        for d in sorted(pending, key=DeliveryRow.order):
            heads.setdefault(d.event.job_id, d)
        due = [
            d
            for d in heads.values()
            if d.next_try_at <= now and (d.lease_until is None or d.lease_until < now)
        ]
        taken = sorted(due, key=lambda d: (d.next_try_at, d.delivery_id))[:limit]
        for d in taken:
            d.lease_until, d.lease_token = lease_until, token
        return [
            Delivery(
                d.delivery_id,
                d.webhook_id,
                d.event.event_id,
                d.event.job_id,
                d.event.type,
                d.body,
                d.failures,
                d.queued_at,
                token,
            )
            for d in sorted(taken, key=lambda d: d.delivery_id)
        ]

    async def settle(self, delivery: Delivery, attempt: Attempt) -> bool:
        self.s.attempts.append(attempt)
        row = next(d for d in self.s.deliveries if d.delivery_id == delivery.delivery_id)
        if row.lease_token != delivery.token or row.state != "pending":
            return False
        row.lease_until = row.lease_token = None
        if attempt.outcome != "delivered":
            row.failures += 1
        if attempt.outcome == "retrying":
            assert attempt.next_try_at is not None
            row.next_try_at = attempt.next_try_at
        else:
            row.state = attempt.outcome
        return True

    async def attempts(self, webhook_id: UUID, job_id: UUID | None, limit: int) -> list[Attempt]:
        mine = [
            a
            for a in self.s.attempts
            if a.webhook_id == webhook_id and (job_id is None or a.job_id == job_id)
        ]
        return list(reversed(mine))[:limit]

    async def purge(self, before: datetime, limit: int) -> int:
        old = {
            d.delivery_id
            for d in self.s.deliveries
            if d.state != "pending" and d.queued_at < before
        }
        old = set(sorted(old)[:limit])
        self.s.deliveries = [d for d in self.s.deliveries if d.delivery_id not in old]
        self.s.attempts = [a for a in self.s.attempts if a.delivery_id not in old]
        return len(old)


class FakeUnitOfWork:
    def __init__(self, store: FakeStore, state: State) -> None:
        self.store = store
        self.state = state
        self.jobs = FakeJobs(self)
        self.dead_letters = FakeDeadLetters(self)
        self.groups = FakeGroups(self)
        self.schedules = FakeSchedules(self)
        self.leases = FakeLeases(self)
        self.workers = FakeWorkers(self)
        self.outbox = FakeOutbox(self)
        self.webhooks = FakeWebhooks(self)
