"""The unit of work: one transaction on the status store, through the repositories the use
cases need, and the outbox port (what must be published once the transaction commits).

Use cases take a `UnitOfWork` and know nothing of Postgres or the broker: the adapter
(services/status/adapters/postgres/) implements it on one database transaction, and
tests/unit/fake_store.py in memory, so every use case is unit-tested without either.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from services.status.domain.dead_letters import DeadLetter
from services.status.domain.projection import Fold, FoldKey
from services.status.domain.redrive import Candidate
from services.status.domain.saga import Member
from services.status.domain.schedules import Cadence
from services.status.domain.webhooks import Webhook
from shared.contracts.events import AnyEvent
from shared.contracts.jobs import PlacedJob
from shared.contracts.workers import AttemptLeased, WorkerHeartbeat
from shared.messages import Envelope


@dataclass(frozen=True)
class StoredFold:
    """A job's view as stored: the fold, its newest-first listing key, and the sort key of
    the last event folded into it (so events in order can be folded onto it)."""

    fold: Fold
    listed_at: datetime
    folded: FoldKey | None = None


class Jobs(Protocol):
    """Job views and their events."""

    async def lock(self, ids: Sequence[UUID]) -> None:
        """One writer per job until commit, even across status replicas."""

    async def folds(self, ids: Sequence[UUID]) -> dict[UUID, StoredFold]: ...

    async def add_events(self, events: Sequence[AnyEvent]) -> set[UUID]:
        """Record events; returns the ids of those not recorded before."""

    async def histories(self, ids: Sequence[UUID]) -> dict[UUID, list[AnyEvent]]: ...

    async def save(self, folds: Sequence[StoredFold]) -> None: ...

    async def purge_finished(self, before: datetime, limit: int) -> int:
        """Delete up to `limit` terminal jobs finished before `before`, with their events
        and dead letters; returns how many jobs."""


@dataclass(frozen=True)
class RedriveSelection:
    """Which dead letters to redrive: by id, or by filter (`everything`: all of them)."""

    ids: Sequence[str] | None = None
    reason: str | None = None
    job_type: str | None = None
    limit: int = 100


class DeadLetters(Protocol):
    async def add(self, letter: DeadLetter) -> bool:
        """Store it; False if a dead letter with its id is stored already."""

    async def candidates(self, selection: RedriveSelection) -> list[Candidate]:
        """Dead letters not redriven yet, matching `selection`, oldest first."""

    async def claim(self, ids: Sequence[str]) -> list[str]:
        """Mark as redriven those nobody has claimed yet; returns the ids this call got."""

    async def purge(self, before: datetime, limit: int) -> int: ...


@dataclass(frozen=True)
class NewMember:
    job_id: UUID
    compensation: dict[str, Any] | None
    data_classification: str
    priority: int


class AlreadyGrouped(Exception):
    """Some of a new group's job ids are members of another group already: a job belongs
    to one group (nothing of the new group is recorded)."""

    def __init__(self, job_ids: list[UUID]) -> None:
        super().__init__(", ".join(str(j) for j in job_ids))
        self.job_ids = job_ids


class Groups(Protocol):
    async def add(self, group_id: UUID, members: Sequence[NewMember]) -> None:
        """Raises AlreadyGrouped when a job id is another group's member."""

    async def open_members(self, job_ids: Sequence[UUID]) -> set[UUID]:
        """Which of `job_ids` are group members whose ending is not recorded yet."""

    async def lock_group_of(self, job_id: UUID) -> UUID | None:
        """The group of an open member, locked until commit (one decision per group)."""

    async def record_outcome(self, job_id: UUID, outcome: str, site: str | None) -> bool: ...

    async def members(self, group_id: UUID) -> list[Member]: ...

    async def set_compensation(self, job_id: UUID, compensation_job_id: UUID) -> None: ...

    async def settle(self, group_id: UUID) -> None: ...

    async def ended_unrecorded(self, limit: int) -> list[tuple[UUID, str, str | None]]:
        """Open members whose job view is terminal: (job id, status, site)."""

    async def purge_settled(self, before: datetime, limit: int) -> int: ...


@dataclass(frozen=True)
class Schedule:
    schedule_id: UUID
    name: str
    cadence: Cadence
    job: dict[str, Any]
    enabled: bool
    next_run_at: datetime | None
    last_run_at: datetime | None = None


class Schedules(Protocol):
    async def add(self, schedule: Schedule) -> None: ...

    async def get(self, schedule_id: UUID, *, for_update: bool = False) -> Schedule | None: ...

    async def set_enabled(
        self, schedule_id: UUID, enabled: bool, next_run_at: datetime | None
    ) -> None: ...

    async def delete(self, schedule_id: UUID) -> bool: ...

    async def due(self, now: datetime, limit: int) -> list[Schedule]: ...

    async def claim(
        self, schedule: Schedule, next_run_at: datetime | None, fired: datetime
    ) -> bool:
        """Move `next_run_at` on from the value `schedule` was read with (compare-and-set):
        of replicas racing for one fire time exactly one claim succeeds."""

    async def add_firing(self, schedule_id: UUID, job_id: UUID, fire_time: datetime) -> None: ...

    async def purge_firings(self, before: datetime, limit: int) -> int: ...


@dataclass(frozen=True)
class Lease:
    job: PlacedJob
    instance: UUID
    worker: str
    retry_base_seconds: float
    retry_max_seconds: float
    still_running: bool  # the job's view still shows this attempt running


class Leases(Protocol):
    async def add(self, message: AttemptLeased) -> None: ...

    async def renew(self, instance: UUID, held: Sequence[tuple[UUID, int]]) -> None: ...

    async def release(self, job_id: UUID, attempt: int, instance: UUID) -> None: ...

    async def lapsed(self, healthy_for: float, limit: int) -> list[Lease]:
        """Leases not renewed within their period (and no longer than the sweeper has been
        healthy), locked so that replicas take different ones."""

    async def delete(self, lease: Lease) -> None: ...


class Workers(Protocol):
    async def heartbeat(self, message: WorkerHeartbeat) -> None: ...

    async def forget(self, older_than_days: float) -> None: ...


class Outbox(Protocol):
    """What must be published once the transaction commits (no dual write)."""

    async def add(self, envelope: Envelope, origin: str | None = None) -> int:
        """Queue `envelope`; `origin` names what decided it (e.g. `schedule:<id>`), so
        its unsent rows can be withdrawn. Returns the row's sequence number."""

    async def withdraw(self, origin: str) -> int:
        """Remove what `origin` queued and is not sent yet."""

    async def purge_sent(self, before: datetime, limit: int) -> int: ...


@dataclass(frozen=True)
class Delivery:
    """One event queued for one webhook, as a delivery worker claimed it (`token`: the
    claim; a settlement counts only while the claim is the delivery's current one)."""

    delivery_id: int
    webhook_id: UUID
    event_id: UUID
    job_id: UUID
    event_type: str
    body: str
    failures: int
    queued_at: datetime
    token: UUID


@dataclass(frozen=True)
class Attempt:
    """One try of a delivery, as the deliveries log shows it."""

    delivery_id: int
    webhook_id: UUID
    event_id: UUID
    job_id: UUID
    event_type: str
    attempted_at: datetime
    outcome: str  # "delivered", "retrying" or "failed" (given up)
    status_code: int | None
    error: str | None
    next_try_at: datetime | None


class Webhooks(Protocol):
    """Registered webhooks and their deliveries (one per webhook and event)."""

    async def add(self, hook: Webhook) -> None: ...

    async def all(self) -> list[Webhook]: ...

    async def get(self, webhook_id: UUID) -> Webhook | None: ...

    async def delete(self, webhook_id: UUID) -> bool:
        """Remove it with its deliveries and their log; False if unknown."""

    async def queue(self, pairs: Sequence[tuple[Webhook, AnyEvent]]) -> None:
        """Queue each event for its webhook, due at once, at the store's clock (a pair
        queued before stays as it is)."""

    async def claim(
        self, webhook_id: UUID, now: datetime, lease_until: datetime, token: UUID, limit: int
    ) -> list[Delivery]:
        """Up to `limit` of the webhook's due deliveries, each the oldest undecided one of
        its job (by the events' order), not claimed by anyone whose lease still runs;
        claimed with `token` until `lease_until` (replicas take different ones)."""

    async def settle(self, delivery: Delivery, attempt: Attempt) -> bool:
        """Log the attempt and, if `delivery`'s claim is still the current one, record its
        outcome (retrying: due again at `attempt.next_try_at`); False if the claim was lost."""

    async def attempts(self, webhook_id: UUID, job_id: UUID | None, limit: int) -> list[Attempt]:
        """The deliveries log, newest first."""

    async def purge(self, before: datetime, limit: int) -> int:
        """Delete up to `limit` decided deliveries (and their log) queued before `before`."""


class UnitOfWork(Protocol):
    """One transaction on the status store; it commits when its context exits cleanly."""

    jobs: Jobs
    dead_letters: DeadLetters
    groups: Groups
    schedules: Schedules
    leases: Leases
    workers: Workers
    outbox: Outbox
    webhooks: Webhooks


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[UnitOfWork]: ...
