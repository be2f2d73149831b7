"""The status store on Postgres: the unit of work the ingest use cases run in."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, fields
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, any_, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.status import ingest, saga
from services.status.ingest import Arrival, DeadLetter, Outcome, StoredView, UnitOfWork
from services.status.projection import JobView
from services.status.tables import dead_letters, group_members, job_events, jobs
from shared.contracts.events import AnyEvent, parse_event

_VIEW_FIELDS = [f.name for f in fields(JobView) if f.name != "key"]
"""The view's own columns of `jobs` (the rest: its lifecycle key, listing and fold keys)."""


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


def _stored(row: Any) -> StoredView:
    m = row._mapping
    view = JobView(**{k: m[k] for k in _VIEW_FIELDS}, key=(m["status_attempt"], m["status_rank"]))
    folded = None
    if m["folded_at"] is not None:
        folded = (m["folded_at"], m["folded_rank"], str(m["folded_event"]))
    return StoredView(view, m["listed_at"], folded)


def _row(stored: StoredView) -> dict[str, Any]:
    # a shallow copy: `dataclasses.asdict` deep-copies params and result for every view
    view = stored.view
    row = {name: getattr(view, name) for name in _VIEW_FIELDS}
    attempt, rank = view.key
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


class PgUnitOfWork:
    """`ingest.UnitOfWork` on one Postgres transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.compensations = 0  # queued in the outbox by this transaction

    async def lock_jobs(self, ids: Sequence[UUID]) -> None:
        # transaction-scoped, taken in sorted order: no deadlock between replicas
        await self.conn.execute(
            text(
                "SELECT pg_advisory_xact_lock(hashtextextended(j::text, 0)) "
                "FROM unnest(CAST(:ids AS uuid[])) AS j ORDER BY j"
            ),
            {"ids": sorted(ids)},
        )

    async def views(self, ids: Sequence[UUID]) -> dict[UUID, StoredView]:
        rows = await self.conn.execute(select(jobs).where(one_of(jobs.c.job_id, ids)))
        return {r.job_id: _stored(r) for r in rows}

    async def insert_events(self, events: Sequence[AnyEvent]) -> set[UUID]:
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

    async def save_views(self, views: Sequence[StoredView]) -> None:
        await self.conn.execute(_UPSERT_VIEWS, [_row(v) for v in views])

    async def insert_dead_letter(self, letter: DeadLetter) -> bool:
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

    async def members_ended(self, endings: Sequence[tuple[UUID, str]]) -> None:
        # one indexed query for the whole batch; most jobs belong to no group
        members = set(
            await self.conn.scalars(
                select(group_members.c.job_id).where(
                    one_of(group_members.c.job_id, [job_id for job_id, _ in endings]),
                    group_members.c.outcome.is_(None),
                )
            )
        )
        for job_id, status in sorted(endings):
            if job_id in members:
                due = await saga.member_ended(self.conn, job_id, status, None)
                self.compensations += len(due)


def one_of(column: ColumnElement[UUID], ids: Sequence[UUID]) -> ColumnElement[bool]:
    """`column = ANY($1)` with the ids as one uuid[] parameter: the same statement text for
    every batch size, so it is prepared once per connection. An `IN` list is a different
    statement for each number of ids, each prepared anew (a round trip and a parse and
    plan in Postgres) once more sizes than asyncpg's statement cache holds have come."""
    return column == any_(bindparam(None, list(ids), type_=ARRAY(PG_UUID(as_uuid=True))))


def unit_of_work(engine: AsyncEngine) -> ingest.UnitOfWorkFactory:
    """A factory of units of work, each one transaction on `engine`."""

    @asynccontextmanager
    async def begin() -> AsyncIterator[UnitOfWork]:
        async with engine.begin() as conn:
            yield PgUnitOfWork(conn)

    return begin


async def project(engine: AsyncEngine, arrivals: Sequence[Arrival]) -> tuple[list[Outcome], int]:
    """Project a batch in one transaction: the outcome of each arrival, and how many
    compensations the endings among them queued in the outbox (to relay after commit)."""
    async with engine.begin() as conn:
        uow = PgUnitOfWork(conn)
        outcomes = await ingest.project(uow, arrivals)
    return outcomes, uow.compensations


async def apply_events(engine: AsyncEngine, events: Sequence[AnyEvent]) -> list[AnyEvent]:
    """Record events (unrestricted publisher) and update their views in one transaction;
    returns the events that were new (the rest were duplicates, skipped by event_id)."""
    outcomes, _ = await project(engine, [Arrival(e) for e in events])
    fresh = {e.event_id: e for e, o in zip(events, outcomes, strict=True) if o is Outcome.PROJECTED}
    return list(fresh.values())


async def record_dead_letter(engine: AsyncEngine, letter: DeadLetter) -> bool:
    async with unit_of_work(engine)() as uow:
        return await ingest.record_dead_letter(uow, letter)


async def mark_redriven(engine: AsyncEngine, ids: Sequence[str]) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            dead_letters.update().where(dead_letters.c.id.in_(ids)).values(redriven_at=func.now())
        )
