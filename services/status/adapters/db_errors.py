"""Whose fault a database error is: the message's (permanent) or anything else (transient).

Classified by fault, not by a list of known exceptions: only what the *content* we wrote
made Postgres refuse is the message's fault — SQLSTATE class 22 (data exception: a NUL in
text or jsonb, a number out of range), 23 (integrity constraint), 54 (program limit: nested
too deep, a value too large), or a value the driver cannot encode. Everything else that
goes wrong reaching or using the database — refused while connecting (not accepting
connections, starting up, too many connections), a dropped connection, a timeout, the
pool, a deadlock, an operator shutdown, an error we did not foresee — is transient: the
delivery is held for a while, then handed back (nack + requeue), never dead-lettered.
"""

from __future__ import annotations

import asyncpg
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential

from shared.errors import PermanentError, RetryableError

HOLD_SECONDS = 240.0
"""How long a delivery is held while the database is away before it is handed back
(nack + requeue), well inside RabbitMQ's consumer_timeout (30 min by default)."""

MESSAGE_FAULT_CLASSES = frozenset({"22", "23", "54"})


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (SQLAlchemy's `orig`, `__cause__`), outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not s for s in seen) and len(seen) < 10:
        seen.append(current)
        current = getattr(current, "orig", None) or current.__cause__
    return seen


def is_message_fault(exc: BaseException) -> bool:
    """True when the content made the write fail: retrying the same content cannot help."""
    for cause in _causes(exc):
        if isinstance(cause, PermanentError | ValidationError | RecursionError):
            return True
        if isinstance(cause, asyncpg.exceptions._base.DataError):  # client-side: cannot encode
            return True
        if isinstance(cause, UnicodeError):
            return True
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate:
            return sqlstate[:2] in MESSAGE_FAULT_CLASSES
    return False


def is_transient(exc: BaseException) -> bool:
    """Anything that is not the message's fault: hold, retry, hand back."""
    return not is_message_fault(exc)


def is_backend_error(exc: BaseException) -> bool:
    """The database or the network failed (the HTTP API answers 503). Narrower than
    `is_transient`, which consumers use to hold rather than dead-letter anything that is not
    the message's fault: an API bug (a KeyError) must surface as a bug, not as 'try again'."""
    return any(
        isinstance(cause, SQLAlchemyError | asyncpg.PostgresError | OSError | TimeoutError)
        or type(cause).__module__.split(".")[0] in ("asyncpg", "aiormq", "aio_pika", "pamqp")
        for cause in _causes(exc)
    ) and not is_message_fault(exc)


def _retry(exc: BaseException) -> bool:
    return isinstance(exc, Exception) and is_transient(exc)  # never retry a cancellation


def db_retrying(hold_seconds: float = HOLD_SECONDS) -> AsyncRetrying:
    """Retry transient database errors with capped backoff, for at most `hold_seconds`."""
    return AsyncRetrying(
        retry=retry_if_exception(_retry),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=stop_after_delay(hold_seconds),
        reraise=True,
    )


class DatabaseAway(RetryableError):
    """The database did not come back while a delivery was held: hand it back."""
