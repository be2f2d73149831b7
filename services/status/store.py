"""Writes to the status store: events, job views, dead letters (one transaction a batch)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.status.projection import JobView, freeze, reduce
from services.status.tables import dead_letters, job_events, jobs
from shared.contracts.events import AnyEvent, parse_event

_VIEW_COLUMNS = [
    c.name
    for c in jobs.columns
    if c.name not in ("status_attempt", "status_rank", "listed_at", "updated_at")
]


def _row_to_view(row: Any) -> JobView:
    m = row._mapping
    return JobView(**{k: m[k] for k in _VIEW_COLUMNS}, key=(m["status_attempt"], m["status_rank"]))


def _view_to_row(view: JobView, listed_at: datetime) -> dict[str, Any]:
    row = asdict(view)
    attempt, rank = row.pop("key")
    row.update(
        status_attempt=attempt, status_rank=rank, listed_at=listed_at, updated_at=datetime.now(UTC)
    )
    return row


async def apply_events(engine: AsyncEngine, events: Sequence[AnyEvent]) -> list[AnyEvent]:
    """Record events and update their jobs' views in one transaction.

    Returns the events that were new (the rest were duplicates, skipped by event_id).
    """
    unique = list({e.event_id: e for e in events}.values())
    if not unique:
        return []
    async with engine.begin() as conn:
        inserted = await conn.execute(
            insert(job_events)
            .values(
                [
                    {
                        "event_id": e.event_id,
                        "job_id": e.job_id,
                        "type": e.type,
                        "rank": e.rank,
                        "occurred_at": e.occurred_at,
                        "payload": e.model_dump(mode="json"),
                    }
                    for e in unique
                ]
            )
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(job_events.c.event_id)
        )
        new_ids = {r.event_id for r in inserted}
        fresh = [e for e in unique if e.event_id in new_ids]
        if fresh:
            await _project(conn, fresh)
    return fresh


async def _project(conn: AsyncConnection, arrived: list[AnyEvent]) -> None:
    """Re-fold every job the new events touch, with set-based statements."""
    by_job: dict[UUID, list[AnyEvent]] = defaultdict(list)
    for event in arrived:
        by_job[event.job_id].append(event)
    ids = sorted(by_job)
    # one writer per job at a time, even with several status replicas (sorted: no deadlock)
    await conn.execute(
        text(
            "SELECT pg_advisory_xact_lock(hashtextextended(j::text, 0)) "
            "FROM unnest(CAST(:ids AS uuid[])) AS j ORDER BY j"
        ),
        {"ids": ids},
    )
    old_rows = {r.job_id: r for r in await conn.execute(select(jobs).where(jobs.c.job_id.in_(ids)))}
    history: dict[UUID, list[AnyEvent]] = defaultdict(list)
    for job_id, payload in await conn.execute(
        select(job_events.c.job_id, job_events.c.payload).where(job_events.c.job_id.in_(ids))
    ):
        history[job_id].append(parse_event(payload))
    rows = []
    for job_id in ids:
        old_row = old_rows.get(job_id)
        old = _row_to_view(old_row) if old_row else None
        view = freeze(old, reduce(job_id, history[job_id]), by_job[job_id])
        first_seen = min(e.occurred_at for e in by_job[job_id])
        listed_at = view.submitted_at or (old_row.listed_at if old_row else first_seen)
        rows.append(_view_to_row(view, listed_at))
    stmt = insert(jobs).values(rows)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["job_id"],
            set_={k: stmt.excluded[k] for k in rows[0] if k != "job_id"},
        )
    )


async def record_dead_letter(engine: AsyncEngine, values: dict[str, Any]) -> bool:
    """Store one dead letter (idempotent by its id); True if it was new."""
    async with engine.begin() as conn:
        result = await conn.execute(
            insert(dead_letters)
            .values(values)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(dead_letters.c.seq)
        )
        return result.first() is not None


async def mark_redriven(engine: AsyncEngine, ids: Sequence[str]) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            dead_letters.update().where(dead_letters.c.id.in_(ids)).values(redriven_at=func.now())
        )
