"""Job views and their events: the projection's repository."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    delete,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.status.adapters.postgres.sql import one_of
from services.status.adapters.tables import (
    dead_letters,
    job_events,
    jobs,
)
from services.status.domain.projection import Fold
from services.status.domain.views import FOLDED_FIELDS, TERMINAL, JobStatus, JobView
from services.status.service_layer.unit_of_work import (
    StoredFold,
)
from shared.contracts.events import AnyEvent, parse_event
from shared.contracts.jobs import DataClassification, Site

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
