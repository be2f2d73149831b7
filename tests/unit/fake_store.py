"""An in-memory unit of work: the status use cases run on it exactly as on Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from uuid import UUID

from services.status.ingest import DeadLetter, StoredView
from shared.contracts.events import AnyEvent


class FakeStore:
    def __init__(self) -> None:
        self.events: dict[UUID, AnyEvent] = {}
        self.views: dict[UUID, StoredView] = {}
        self.dead_letters: dict[str, DeadLetter] = {}
        self.ended_members: list[tuple[UUID, str]] = []
        self.history_reads = 0  # jobs whose whole history a projection re-read

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[FakeUnitOfWork]:
        """All or nothing: changes become visible only if the block ends cleanly."""
        uow = FakeUnitOfWork(self)
        yield uow
        uow.commit()


class FakeUnitOfWork:
    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.events = dict(store.events)
        self.view_rows = dict(store.views)
        self.dead_letters = dict(store.dead_letters)
        self.ended: list[tuple[UUID, str]] = []

    def commit(self) -> None:
        self.store.events, self.store.views = self.events, self.view_rows
        self.store.dead_letters = self.dead_letters
        self.store.ended_members += self.ended

    async def lock_jobs(self, ids: Sequence[UUID]) -> None:
        return None

    async def views(self, ids: Sequence[UUID]) -> dict[UUID, StoredView]:
        return {i: self.view_rows[i] for i in ids if i in self.view_rows}

    async def insert_events(self, events: Sequence[AnyEvent]) -> set[UUID]:
        new = {e.event_id for e in events if e.event_id not in self.events}
        self.events.update({e.event_id: e for e in events if e.event_id in new})
        return new

    async def histories(self, ids: Sequence[UUID]) -> dict[UUID, list[AnyEvent]]:
        self.store.history_reads += len(ids)
        return {i: [e for e in self.events.values() if e.job_id == i] for i in ids}

    async def save_views(self, views: Sequence[StoredView]) -> None:
        self.view_rows.update({v.view.job_id: v for v in views})

    async def insert_dead_letter(self, letter: DeadLetter) -> bool:
        if letter.id in self.dead_letters:
            return False
        self.dead_letters[letter.id] = letter
        return True

    async def members_ended(self, endings: Sequence[tuple[UUID, str]]) -> None:
        self.ended.extend(endings)
