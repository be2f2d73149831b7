"""Database errors by fault: only what the content made Postgres refuse is permanent."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from services.status.adapters.db_errors import db_retrying, is_message_fault, is_transient


def wrapped(cause: BaseException) -> DBAPIError:
    """As SQLAlchemy's asyncpg dialect raises it: the driver error as `orig`'s cause."""
    orig = Exception(str(cause))
    orig.__cause__ = cause
    orig.sqlstate = getattr(cause, "sqlstate", None)  # type: ignore[attr-defined]
    return DBAPIError("INSERT ...", {}, orig)  # type: ignore[arg-type]


TRANSIENT = [
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.TooManyConnectionsError("too many connections"),
    asyncpg.exceptions.AdminShutdownError("terminating connection"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
    asyncpg.exceptions.InvalidCatalogNameError("database does not exist"),
    asyncpg.exceptions.DeadlockDetectedError("deadlock"),
    asyncpg.exceptions.InsufficientPrivilegeError("permission denied"),
    asyncpg.exceptions._base.InterfaceError("another operation is in progress"),
    ConnectionRefusedError("refused"),
    TimeoutError(),
    OSError("network unreachable"),
    RuntimeError("something nobody foresaw"),
]
MESSAGE_FAULTS = [
    asyncpg.exceptions.UntranslatableCharacterError("\\u0000 cannot be converted to text"),
    asyncpg.exceptions.NumericValueOutOfRangeError("integer out of range"),
    asyncpg.exceptions.UniqueViolationError("duplicate key"),
    asyncpg.exceptions.ProgramLimitExceededError("index row size exceeds maximum"),
    asyncpg.exceptions._base.DataError("invalid input for query argument"),
    UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__)
def test_anything_wrong_reaching_or_using_the_database_is_transient(error: Exception) -> None:
    assert is_transient(error)
    assert is_transient(wrapped(error))
    assert is_transient(OperationalError("SELECT 1", {}, error))


def test_pool_errors_are_transient() -> None:
    assert is_transient(PoolTimeout("QueuePool limit reached"))


@pytest.mark.parametrize("error", MESSAGE_FAULTS, ids=lambda e: type(e).__name__)
def test_content_postgres_refuses_is_the_messages_fault(error: Exception) -> None:
    assert is_message_fault(error)
    assert is_message_fault(wrapped(error))


async def test_the_hold_retries_transient_errors_and_stops_at_once_on_a_message_fault() -> None:
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise asyncpg.CannotConnectNowError("starting up")

    async for attempt in db_retrying(5):
        with attempt:
            await flaky()
    assert calls == 3
    tries = 0

    async def refused_content() -> None:
        nonlocal tries
        tries += 1
        raise asyncpg.exceptions.UntranslatableCharacterError("nul")

    with pytest.raises(asyncpg.exceptions.UntranslatableCharacterError):
        await held(refused_content)
    assert tries == 1


async def held(call: Callable[[], Awaitable[None]]) -> None:
    async for attempt in db_retrying(5):
        with attempt:
            await call()


async def test_a_cancellation_is_never_retried() -> None:
    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await held(cancelled)
