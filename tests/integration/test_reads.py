"""The HTTP API's reads: one statement each on a pool that does not ping before use."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.status.adapters import queries


def count_statements(engine: AsyncEngine) -> list[str]:
    sent: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    return sent


pytestmark = pytest.mark.connected


async def test_a_read_on_a_connection_the_database_dropped_runs_again_on_a_new_one(
    database_url: str, engine: AsyncEngine
) -> None:
    reads = create_async_engine(database_url, pool_size=1, isolation_level="AUTOCOMMIT")
    try:
        [(first,)] = await queries.rows(reads, select(func.pg_backend_pid()))
        async with engine.connect() as admin:  # what a database restart does to it
            await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        sent = count_statements(reads)
        [(second,)] = await queries.rows(reads, select(func.pg_backend_pid()))
        assert second != first
        assert len(sent) == 2  # tried on the dropped connection, then on a new one
    finally:
        await reads.dispose()


async def test_a_read_that_fails_for_another_reason_is_not_run_again(
    database_url: str,
) -> None:
    reads = create_async_engine(database_url, pool_size=1, isolation_level="AUTOCOMMIT")
    try:
        sent = count_statements(reads)
        with pytest.raises(DBAPIError) as raised:
            await queries.rows(reads, text("SELECT 1 / 0"))
        assert not raised.value.connection_invalidated
        assert sent == ["SELECT 1 / 0"]
    finally:
        await reads.dispose()
