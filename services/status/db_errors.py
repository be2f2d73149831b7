"""Which database errors are transient (wait and retry) and which are permanent."""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential

from shared.errors import RetryableError

HOLD_SECONDS = 240.0
"""How long a delivery is held while the database is away before it is handed back
(nack + requeue), well inside RabbitMQ's consumer_timeout (30 min by default)."""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | InterfaceError | OSError | TimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig or exc
    return (
        isinstance(
            exc,
            asyncpg.PostgresConnectionError
            | asyncpg.CannotConnectNowError
            | asyncpg.TooManyConnectionsError
            | asyncpg.exceptions.AdminShutdownError
            | asyncpg.exceptions.InterfaceError
            | ConnectionError,
        )
        or "connection" in type(exc).__name__.lower()
    )


def db_retrying(hold_seconds: float = HOLD_SECONDS) -> AsyncRetrying:
    """Retry transient database errors with capped backoff, for at most `hold_seconds`."""
    return AsyncRetrying(
        retry=retry_if_exception(is_transient),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=stop_after_delay(hold_seconds),
        reraise=True,
    )


class DatabaseAway(RetryableError):
    """The database did not come back while a delivery was held: hand it back."""
