"""The unit of work on Postgres: one transaction, the repositories of
services/status/service_layer/unit_of_work.py as SQL on it, one module per repository."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.status.adapters.postgres.dead_letters import PgDeadLetters
from services.status.adapters.postgres.fleet import PgLeases, PgWorkers
from services.status.adapters.postgres.groups import PgGroups
from services.status.adapters.postgres.jobs import PgJobs
from services.status.adapters.postgres.outbox import PgOutbox
from services.status.adapters.postgres.schedules import PgSchedules
from services.status.adapters.postgres.webhooks import PgWebhooks
from services.status.service_layer.unit_of_work import (
    UnitOfWork,
    UnitOfWorkFactory,
)


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
