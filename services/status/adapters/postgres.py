"""The unit of work on Postgres: one transaction, the repositories of
services/status/service_layer/unit_of_work.py as SQL on it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Text,
    and_,
    any_,
    bindparam,
    delete,
    func,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.status.adapters.tables import (
    dead_letters,
    group_members,
    job_events,
    job_groups,
    jobs,
    leases,
    outbox,
    schedule_firings,
    schedules,
    webhook_attempts,
    webhook_deliveries,
    webhooks,
    workers,
)
from services.status.domain.dead_letters import DeadLetter
from services.status.domain.projection import Fold
from services.status.domain.redrive import Candidate
from services.status.domain.saga import Member
from services.status.domain.schedules import Cadence
from services.status.domain.views import FOLDED_FIELDS, TERMINAL, JobStatus, JobView
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
    UnitOfWork,
    UnitOfWorkFactory,
)
from shared.contracts.events import AnyEvent, parse_event
from shared.contracts.jobs import DataClassification, PlacedJob, Site
from shared.contracts.workers import AttemptLeased, WorkerHeartbeat
from shared.messages import Envelope


def one_of(column: ColumnElement[UUID], ids: Sequence[UUID]) -> ColumnElement[bool]:
    """`column = ANY($1)` with the ids as one uuid[] parameter: the same statement text for
    every batch size, so it is prepared once per connection. An `IN` list is a different
    statement for each number of ids, each prepared anew (a round trip and a parse and
    plan in Postgres) once more sizes than asyncpg's statement cache holds have come."""
    return column == any_(bindparam(None, list(ids), type_=ARRAY(PG_UUID(as_uuid=True))))


def _texts(column: ColumnElement[str], values: Sequence[str]) -> ColumnElement[bool]:
    return column == any_(bindparam(None, list(values), type_=ARRAY(Text)))


# -- job views and events -----------------------------------------------------------------
_INSERT_EVENTS = (
    insert(job_events)
    .on_conflict_do_nothing(index_elements=["event_id"])
    .returning(job_events.c.event_id)
)
_upsert = insert(jobs)
_UPSERT_VIEWS = _upsert.on_conflict_do_update(
    index_elements=["job_id"],
    set_={c.name: _upsert.excluded[c.name] for c in jobs.columns if c.name != "job_id"},
)


def view_of(m: Any) -> JobView:
    """A job row (a mapping: `jobs` and, where joined, `group_id` and `schedule_id`) as the
    one view type: enums for the enum fields."""
    site = m["site"]
    classification = m["data_classification"]
    return JobView(
        job_id=m["job_id"],
        status=JobStatus(m["status"]),
        job_type=m["job_type"],
        site=Site(site) if site in ("public", "private") else None,
        rule=m["rule"],
        reason=m["reason"],
        priority=m["priority"],
        data_classification=DataClassification(classification) if classification else None,
        attempts=m["attempts"],
        max_attempts=m["max_attempts"],
        params=m["params"],
        result=m["result"],
        error=m["error"],
        progress=m["progress"],
        progress_message=m["progress_message"],
        submitted_at=m["submitted_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        parent_id=m["parent_id"],
        updated_at=m["updated_at"],
        group_id=m.get("group_id"),
        schedule_id=m.get("schedule_id"),
    )


def _stored(row: Any) -> StoredFold:
    m = row._mapping
    folded = None
    if m["folded_at"] is not None:
        folded = (m["folded_at"], m["folded_rank"], str(m["folded_event"]))
    fold = Fold(view_of(m), (m["status_attempt"], m["status_rank"]))
    return StoredFold(fold, m["listed_at"], folded)


def _row(stored: StoredFold) -> dict[str, Any]:
    view = stored.fold.view
    row = {name: getattr(view, name) for name in FOLDED_FIELDS}
    row["job_id"] = view.job_id
    attempt, rank = stored.fold.key
    at, rank_folded, event = stored.folded or (None, None, None)
    row.update(
        folded_at=at,
        folded_rank=rank_folded,
        folded_event=event,
        status_attempt=attempt,
        status_rank=rank,
        listed_at=stored.listed_at,
        updated_at=datetime.now(UTC),
    )
    return row


class PgJobs:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def lock(self, ids: Sequence[UUID]) -> None:
        # transaction-scoped, taken in sorted order: no deadlock between replicas
        await self.conn.execute(
            text(
                "SELECT pg_advisory_xact_lock(hashtextextended(j::text, 0)) "
                "FROM unnest(CAST(:ids AS uuid[])) AS j ORDER BY j"
            ),
            {"ids": sorted(ids)},
        )

    async def folds(self, ids: Sequence[UUID]) -> dict[UUID, StoredFold]:
        rows = await self.conn.execute(select(jobs).where(one_of(jobs.c.job_id, ids)))
        return {r.job_id: _stored(r) for r in rows}

    async def add_events(self, events: Sequence[AnyEvent]) -> set[UUID]:
        # one parameter set per row (executemany, "insertmanyvalues"): the statement is
        # compiled once and cached, whatever the batch size (a .values(list) is not)
        inserted = await self.conn.execute(
            _INSERT_EVENTS,
            [
                {
                    "event_id": e.event_id,
                    "job_id": e.job_id,
                    "type": e.type,
                    "rank": e.rank,
                    "occurred_at": e.occurred_at,
                    "payload": e.model_dump(mode="json"),
                }
                for e in events
            ],
        )
        return {r.event_id for r in inserted}

    async def histories(self, ids: Sequence[UUID]) -> dict[UUID, list[AnyEvent]]:
        history: dict[UUID, list[AnyEvent]] = defaultdict(list)
        query = select(job_events.c.job_id, job_events.c.payload).where(
            one_of(job_events.c.job_id, ids)
        )
        for job_id, payload in await self.conn.execute(query):
            history[job_id].append(parse_event(payload))
        return history

    async def save(self, folds: Sequence[StoredFold]) -> None:
        await self.conn.execute(_UPSERT_VIEWS, [_row(f) for f in folds])

    async def purge_finished(self, before: datetime, limit: int) -> int:
        ids = list(
            await self.conn.scalars(
                select(jobs.c.job_id)
                .where(jobs.c.status.in_(sorted(TERMINAL)), jobs.c.finished_at < before)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if ids:
            await self.conn.execute(delete(job_events).where(one_of(job_events.c.job_id, ids)))
            await self.conn.execute(delete(dead_letters).where(one_of(dead_letters.c.job_id, ids)))
            await self.conn.execute(delete(jobs).where(one_of(jobs.c.job_id, ids)))
        return len(ids)


# -- dead letters ---------------------------------------------------------------------------
class PgDeadLetters:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, letter: DeadLetter) -> bool:
        values = asdict(letter)
        for transient in ("attempts", "publisher", "ending"):
            values.pop(transient)
        result = await self.conn.execute(
            insert(dead_letters)
            .values(values)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(dead_letters.c.seq)
        )
        return result.first() is not None

    async def candidates(self, selection: RedriveSelection) -> list[Candidate]:
        query = select(dead_letters.c.id, dead_letters.c.reason, dead_letters.c.body).where(
            dead_letters.c.redriven_at.is_(None)
        )
        if selection.ids is not None:
            query = query.where(_texts(dead_letters.c.id, selection.ids))
        if selection.reason is not None:
            query = query.where(dead_letters.c.reason == selection.reason)
        if selection.job_type is not None:
            query = query.where(dead_letters.c.job_type == selection.job_type)
        query = query.order_by(dead_letters.c.seq).limit(selection.limit)
        return [Candidate(r.id, r.reason, r.body) for r in await self.conn.execute(query)]

    async def claim(self, ids: Sequence[str]) -> list[str]:
        claimed = await self.conn.execute(
            update(dead_letters)
            .where(_texts(dead_letters.c.id, ids), dead_letters.c.redriven_at.is_(None))
            .values(redriven_at=func.now())
            .returning(dead_letters.c.id, dead_letters.c.seq)
        )
        return [row.id for row in sorted(claimed, key=lambda r: r.seq)]

    async def purge(self, before: datetime, limit: int) -> int:
        old = select(dead_letters.c.seq).where(dead_letters.c.dead_lettered_at < before)
        result = await self.conn.execute(
            delete(dead_letters).where(dead_letters.c.seq.in_(old.limit(limit)))
        )
        return result.rowcount or 0


# -- groups ---------------------------------------------------------------------------------
class PgGroups:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, group_id: UUID, members: Sequence[NewMember]) -> None:
        ids = [m.job_id for m in members]
        taken = list(
            await self.conn.scalars(
                select(group_members.c.job_id).where(one_of(group_members.c.job_id, ids))
            )
        )
        if taken:
            raise AlreadyGrouped(taken)
        await self.conn.execute(insert(job_groups).values(group_id=group_id))
        try:
            async with self.conn.begin_nested():  # a racing group took one meanwhile
                await self.conn.execute(
                    insert(group_members).values(
                        [
                            {
                                "group_id": group_id,
                                "job_id": m.job_id,
                                "position": i,
                                "compensation": m.compensation,
                                "data_classification": m.data_classification,
                                "priority": m.priority,
                            }
                            for i, m in enumerate(members)
                        ]
                    )
                )
        except IntegrityError as exc:
            raise AlreadyGrouped(ids) from exc

    async def open_members(self, job_ids: Sequence[UUID]) -> set[UUID]:
        return set(
            await self.conn.scalars(
                select(group_members.c.job_id).where(
                    one_of(group_members.c.job_id, job_ids), group_members.c.outcome.is_(None)
                )
            )
        )

    async def lock_group_of(self, job_id: UUID) -> UUID | None:
        group_id: UUID | None = await self.conn.scalar(
            select(group_members.c.group_id).where(
                group_members.c.job_id == job_id, group_members.c.outcome.is_(None)
            )
        )
        if group_id is not None:  # one decision per group at a time, across replicas
            await self.conn.execute(
                select(job_groups.c.group_id)
                .where(job_groups.c.group_id == group_id)
                .with_for_update()
            )
        return group_id

    async def record_outcome(self, job_id: UUID, outcome: str, site: str | None) -> bool:
        recorded = await self.conn.execute(
            group_members.update()
            .where(group_members.c.job_id == job_id, group_members.c.outcome.is_(None))
            .values(outcome=outcome, site=func.coalesce(site, group_members.c.site))
            .returning(group_members.c.job_id)
        )
        return recorded.first() is not None

    async def members(self, group_id: UUID) -> list[Member]:
        rows = await self.conn.execute(
            select(group_members)
            .where(group_members.c.group_id == group_id)
            .order_by(group_members.c.position)
        )
        return [
            Member(
                r.job_id,
                r.compensation,
                r.compensation_job_id,
                r.outcome,
                r.site,
                r.data_classification,
                r.priority,
            )
            for r in rows
        ]

    async def set_compensation(self, job_id: UUID, compensation_job_id: UUID) -> None:
        await self.conn.execute(
            group_members.update()
            .where(group_members.c.job_id == job_id)
            .values(compensation_job_id=compensation_job_id)
        )

    async def settle(self, group_id: UUID) -> None:
        await self.conn.execute(
            job_groups.update()
            .where(job_groups.c.group_id == group_id)
            .values(settled_at=func.now())
        )

    async def ended_unrecorded(self, limit: int) -> list[tuple[UUID, str, str | None]]:
        query = (
            select(group_members.c.job_id, jobs.c.status, jobs.c.site)
            .join(jobs, jobs.c.job_id == group_members.c.job_id)
            .where(group_members.c.outcome.is_(None), jobs.c.status.in_(sorted(TERMINAL)))
            .limit(limit)
        )
        return [(r.job_id, r.status, r.site) for r in await self.conn.execute(query)]

    async def purge_settled(self, before: datetime, limit: int) -> int:
        ids = list(
            await self.conn.scalars(
                select(job_groups.c.group_id)
                .where(job_groups.c.settled_at < before)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if ids:
            await self.conn.execute(
                delete(group_members).where(one_of(group_members.c.group_id, ids))
            )
            await self.conn.execute(delete(job_groups).where(one_of(job_groups.c.group_id, ids)))
        return len(ids)


# -- schedules ------------------------------------------------------------------------------
def _schedule(row: Any) -> Schedule:
    m = row._mapping
    return Schedule(
        schedule_id=m["schedule_id"],
        name=m["name"],
        cadence=Cadence(cron=m["cron"], every_seconds=m["every_seconds"], timezone=m["timezone"]),
        job=m["job"],
        enabled=m["enabled"],
        next_run_at=m["next_run_at"],
        last_run_at=m["last_run_at"],
    )


def due_at(now: datetime) -> ColumnElement[bool]:
    """The schedules due at `now` (the partial index `ix_schedules_due`)."""
    return and_(schedules.c.enabled, schedules.c.next_run_at <= now)


class PgSchedules:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, schedule: Schedule) -> None:
        await self.conn.execute(
            schedules.insert().values(
                schedule_id=schedule.schedule_id,
                name=schedule.name,
                cron=schedule.cadence.cron,
                every_seconds=schedule.cadence.every_seconds,
                timezone=schedule.cadence.timezone,
                job=schedule.job,
                enabled=schedule.enabled,
                next_run_at=schedule.next_run_at,
            )
        )

    async def get(self, schedule_id: UUID, *, for_update: bool = False) -> Schedule | None:
        query = select(schedules).where(schedules.c.schedule_id == schedule_id)
        row = (await self.conn.execute(query.with_for_update() if for_update else query)).first()
        return _schedule(row) if row is not None else None

    async def set_enabled(
        self, schedule_id: UUID, enabled: bool, next_run_at: datetime | None
    ) -> None:
        await self.conn.execute(
            update(schedules)
            .where(schedules.c.schedule_id == schedule_id)
            .values(enabled=enabled, next_run_at=next_run_at)
        )

    async def delete(self, schedule_id: UUID) -> bool:
        gone = await self.conn.execute(
            delete(schedules).where(schedules.c.schedule_id == schedule_id)
        )
        return bool(gone.rowcount)

    async def due(self, now: datetime, limit: int) -> list[Schedule]:
        query = select(schedules).where(due_at(now)).order_by(schedules.c.next_run_at).limit(limit)
        return [_schedule(r) for r in await self.conn.execute(query)]

    async def claim(
        self, schedule: Schedule, next_run_at: datetime | None, fired: datetime
    ) -> bool:
        claimed = await self.conn.execute(
            update(schedules)
            .where(
                schedules.c.schedule_id == schedule.schedule_id,
                schedules.c.enabled,
                schedules.c.next_run_at == schedule.next_run_at,  # the compare-and-set
            )
            .values(next_run_at=next_run_at, last_run_at=fired)
        )
        return claimed.rowcount == 1

    async def add_firing(self, schedule_id: UUID, job_id: UUID, fire_time: datetime) -> None:
        await self.conn.execute(
            insert(schedule_firings)
            .values(
                job_id=job_id,
                schedule_id=schedule_id,
                fire_time=fire_time,
                claimed_at=func.now(),
            )
            .on_conflict_do_nothing()
        )

    async def purge_firings(self, before: datetime, limit: int) -> int:
        old = select(schedule_firings.c.job_id).where(schedule_firings.c.fire_time < before)
        result = await self.conn.execute(
            delete(schedule_firings).where(schedule_firings.c.job_id.in_(old.limit(limit)))
        )
        return result.rowcount or 0


# -- leases and the worker fleet ---------------------------------------------------------
class PgLeases:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, message: AttemptLeased) -> None:
        await self.conn.execute(
            insert(leases)
            .values(
                job_id=message.job.job_id,
                attempt=message.job.attempt,
                instance=message.instance,
                worker=message.worker,
                job=message.job.model_dump(mode="json"),
                lease_seconds=message.lease_seconds,
                retry_base_seconds=message.retry_base_seconds,
                retry_max_seconds=message.retry_max_seconds,
                renewed_at=func.now(),
            )
            .on_conflict_do_nothing()
        )

    async def renew(self, instance: UUID, held: Sequence[tuple[UUID, int]]) -> None:
        await self.conn.execute(
            update(leases)
            .where(
                leases.c.instance == instance, tuple_(leases.c.job_id, leases.c.attempt).in_(held)
            )
            .values(renewed_at=func.now())
        )

    async def release(self, job_id: UUID, attempt: int, instance: UUID) -> None:
        await self.conn.execute(
            delete(leases).where(
                leases.c.job_id == job_id,
                leases.c.attempt == attempt,
                leases.c.instance == instance,
            )
        )

    async def lapsed(self, healthy_for: float, limit: int) -> list[Lease]:
        lapsed = leases.c.renewed_at < func.now() - leases.c.lease_seconds * text(
            "interval '1 second'"
        )
        running = and_(
            jobs.c.job_id == leases.c.job_id,
            jobs.c.status == JobStatus.RUNNING.value,
            jobs.c.attempts == leases.c.attempt,
        )
        query = (
            select(leases, running.label("still_running"))
            .select_from(leases.outerjoin(jobs, jobs.c.job_id == leases.c.job_id))
            .where(lapsed, leases.c.lease_seconds <= healthy_for)
            .with_for_update(of=leases, skip_locked=True)
            .limit(limit)
        )
        return [
            Lease(
                job=PlacedJob.model_validate(r.job),
                instance=r.instance,
                worker=r.worker,
                retry_base_seconds=r.retry_base_seconds,
                retry_max_seconds=r.retry_max_seconds,
                still_running=bool(r.still_running),
            )
            for r in await self.conn.execute(query)
        ]

    async def delete(self, lease: Lease) -> None:
        await self.release(lease.job.job_id, lease.job.attempt, lease.instance)


class PgWorkers:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def heartbeat(self, message: WorkerHeartbeat) -> None:
        values: dict[str, Any] = {
            "worker": message.worker,
            "site": message.site.value,
            "job_types": message.job_types,
            "concurrency": message.concurrency,
            "running": [r.model_dump(mode="json") for r in message.running],
            "interval_seconds": message.interval_seconds,
            "last_seen": func.now(),
        }
        stmt = insert(workers).values(instance=message.instance, **values)
        await self.conn.execute(
            stmt.on_conflict_do_update(index_elements=["instance"], set_=values)
        )

    async def forget(self, older_than_days: float) -> None:
        await self.conn.execute(
            delete(workers).where(
                workers.c.last_seen < func.now() - text(f"interval '{float(older_than_days)} days'")
            )
        )


# -- the outbox port ----------------------------------------------------------------------
class PgOutbox:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.added = 0

    async def add(self, envelope: Envelope, origin: str | None = None) -> int:
        seq: int = await self.conn.scalar(
            outbox.insert()
            .values(
                message_id=envelope.message_id,
                exchange=envelope.exchange,
                routing_key=envelope.routing_key,
                body=envelope.body,
                priority=envelope.priority,
                headers=envelope.headers,
                expiration=envelope.expiration,
                origin=origin,
            )
            .returning(outbox.c.seq)
        )
        self.added += 1
        return seq

    async def withdraw(self, origin: str) -> int:
        gone = await self.conn.execute(
            delete(outbox).where(outbox.c.origin == origin, outbox.c.sent_at.is_(None))
        )
        return gone.rowcount or 0

    async def purge_sent(self, before: datetime, limit: int) -> int:
        old = select(outbox.c.seq).where(outbox.c.sent_at < before).limit(limit)
        result = await self.conn.execute(delete(outbox).where(outbox.c.seq.in_(old)))
        return result.rowcount or 0


# -- webhooks -----------------------------------------------------------------------------
def _webhook(row: Any) -> Webhook:
    m = row._mapping
    return Webhook(
        webhook_id=m["webhook_id"],
        url=m["url"],
        events=tuple(m["events"]),
        job_type=m["job_type"],
        secret=m["secret"],
        created_at=m["created_at"],
    )


_QUEUE_DELIVERIES = insert(webhook_deliveries).on_conflict_do_nothing(
    constraint="uq_webhook_deliveries_event"
)
_d = webhook_deliveries
_CLAIM = text(
    """
    SELECT d.delivery_id FROM webhook_deliveries d
    WHERE d.webhook_id = :webhook_id AND d.state = 'pending' AND d.next_try_at <= :now
      AND (d.lease_until IS NULL OR d.lease_until < :now)
      AND NOT EXISTS (
        SELECT 1 FROM webhook_deliveries e
        WHERE e.webhook_id = d.webhook_id AND e.job_id = d.job_id AND e.state = 'pending'
          AND (e.occurred_at, e.rank, e.event_id) < (d.occurred_at, d.rank, d.event_id))
    ORDER BY d.next_try_at, d.delivery_id
    LIMIT :limit
    FOR UPDATE OF d SKIP LOCKED
    """
)


class PgWebhooks:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, hook: Webhook) -> None:
        await self.conn.execute(
            webhooks.insert().values(
                webhook_id=hook.webhook_id,
                url=hook.url,
                events=list(hook.events),
                job_type=hook.job_type,
                secret=hook.secret,
                created_at=hook.created_at,
            )
        )

    async def all(self) -> list[Webhook]:
        rows = await self.conn.execute(select(webhooks).order_by(webhooks.c.created_at))
        return [_webhook(r) for r in rows]

    async def get(self, webhook_id: UUID) -> Webhook | None:
        row = (
            await self.conn.execute(select(webhooks).where(webhooks.c.webhook_id == webhook_id))
        ).first()
        return None if row is None else _webhook(row)

    async def delete(self, webhook_id: UUID) -> bool:
        await self.conn.execute(
            delete(webhook_attempts).where(webhook_attempts.c.webhook_id == webhook_id)
        )
        gone = await self.conn.execute(delete(webhooks).where(webhooks.c.webhook_id == webhook_id))
        return bool(gone.rowcount)

    async def queue(self, pairs: Sequence[tuple[Webhook, AnyEvent]]) -> None:
        await self.conn.execute(
            _QUEUE_DELIVERIES,
            [
                {
                    "webhook_id": hook.webhook_id,
                    "event_id": event.event_id,
                    "job_id": event.job_id,
                    "event_type": event.type,
                    "occurred_at": event.occurred_at,
                    "rank": event.rank,
                    "body": event.model_dump_json(),
                }
                for hook, event in pairs
            ],
        )

    async def claim(
        self, webhook_id: UUID, now: datetime, lease_until: datetime, token: UUID, limit: int
    ) -> list[Delivery]:
        ids = list(
            await self.conn.scalars(_CLAIM, {"webhook_id": webhook_id, "now": now, "limit": limit})
        )
        if not ids:
            return []
        rows = await self.conn.execute(
            update(_d)
            .where(_d.c.delivery_id == any_(bindparam(None, ids, type_=ARRAY(BigInteger))))
            .values(lease_until=lease_until, lease_token=token)
            .returning(_d)
        )
        claimed = [
            Delivery(
                delivery_id=r.delivery_id,
                webhook_id=r.webhook_id,
                event_id=r.event_id,
                job_id=r.job_id,
                event_type=r.event_type,
                body=r.body,
                failures=r.failures,
                queued_at=r.queued_at,
                token=token,
            )
            for r in rows
        ]
        return sorted(claimed, key=lambda d: d.delivery_id)

    async def settle(self, delivery: Delivery, attempt: Attempt) -> bool:
        await self.conn.execute(webhook_attempts.insert().values(**asdict(attempt)))
        pending = attempt.outcome == "retrying"
        changes: dict[str, Any] = {"lease_until": None, "lease_token": None}
        if pending:
            changes.update(failures=_d.c.failures + 1, next_try_at=attempt.next_try_at)
        else:
            changes.update(
                state=attempt.outcome,
                decided_at=attempt.attempted_at,
                failures=_d.c.failures + (0 if attempt.outcome == "delivered" else 1),
            )
        done = await self.conn.execute(
            update(_d)
            .where(
                _d.c.delivery_id == delivery.delivery_id,
                _d.c.lease_token == delivery.token,
                _d.c.state == "pending",
            )
            .values(**changes)
        )
        return bool(done.rowcount)

    async def attempts(self, webhook_id: UUID, job_id: UUID | None, limit: int) -> list[Attempt]:
        a = webhook_attempts
        query = select(a).where(a.c.webhook_id == webhook_id)
        if job_id is not None:
            query = query.where(a.c.job_id == job_id)
        rows = await self.conn.execute(query.order_by(a.c.attempt_id.desc()).limit(limit))
        fields = [f for f in Attempt.__dataclass_fields__]
        return [Attempt(**{f: r._mapping[f] for f in fields}) for r in rows]

    async def purge(self, before: datetime, limit: int) -> int:
        old = (
            select(_d.c.delivery_id)
            .where(_d.c.state != "pending", _d.c.queued_at < before)
            .limit(limit)
        )
        result = await self.conn.execute(delete(_d).where(_d.c.delivery_id.in_(old)))
        return result.rowcount or 0


class PgUnitOfWork(UnitOfWork):
    """The status store's unit of work on one Postgres transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.jobs = PgJobs(conn)
        self.dead_letters = PgDeadLetters(conn)
        self.groups = PgGroups(conn)
        self.schedules = PgSchedules(conn)
        self.leases = PgLeases(conn)
        self.workers = PgWorkers(conn)
        self.outbox = PgOutbox(conn)
        self.webhooks = PgWebhooks(conn)


def unit_of_work(
    engine: AsyncEngine, on_outbox: Callable[[], None] | None = None
) -> UnitOfWorkFactory:
    """A factory of units of work, each one transaction on `engine`; `on_outbox` is called
    after a commit that queued messages (the relay publishes them at once)."""

    @asynccontextmanager
    async def begin() -> AsyncIterator[UnitOfWork]:
        async with engine.begin() as conn:
            uow = PgUnitOfWork(conn)
            yield uow
        if uow.outbox.added and on_outbox is not None:
            on_outbox()

    return begin
