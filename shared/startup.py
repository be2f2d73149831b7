"""Before a service starts: the settings that name its broker and database must name ones
it can use.

A malformed `AMQP_URL` or `DATABASE_URL`, a host that does not answer, a wrong password or
database name would otherwise surface as a traceback from deep inside FastStream, uvicorn
or alembic (the status service's write side with a second one), or not at all: a router
whose database is away at start holds its deliveries and retries, as it must for an
outage that begins later. At start-up it is a setting that cannot work, and the operator
gets one critical log line naming the setting, the URL with its password hidden, and the
cause, then exit status `EXIT_UNUSABLE_SETTING` (3, as for a handler module that does not
import: a start refused for its configuration). A supervisor that restarts on failure
(deploy/compose.yaml) tries again, so a broker still starting is waited for there.
A broker whose TLS cannot be verified (a wrong CA, a certificate for another host) is
the one line of `TLSRefused` and exit status 4 (`shared.service.EXIT_TLS_REFUSED`), as
when it happens later in start-up.

The broker is tried through `shared.connection.connect`, the connection every service
uses (every node of a cluster in turn), the database with one connection of the async
engine the service uses.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable

from aiormq.exceptions import InvalidFrameError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from yarl import URL

from shared.connection import connect, node_urls
from shared.errors import TLSRefused
from shared.service import EXIT_TLS_REFUSED

EXIT_UNUSABLE_SETTING = 3
CHECK_SECONDS = 10.0
"""How long one connection attempt may take (a host that drops packets never refuses)."""
HIDDEN = "******"
ASYNC_DRIVER = "postgresql+asyncpg"
"""The one database driver the services use (SQLAlchemy's async engine over asyncpg)."""

log = logging.getLogger("hybridq.startup")


class UnusableSetting(Exception):
    """A setting names a broker or database this service cannot use."""

    def __init__(self, setting: str, shown: str, cause: str) -> None:
        super().__init__(f"{setting} ({shown}) cannot be used: {cause}")
        self.setting = setting


def shown_amqp(amqp_url: str) -> str:
    """`AMQP_URL` as it may be printed: every node's password hidden."""
    shown = []
    for part in amqp_url.split(","):
        try:
            url = URL(part.strip())
            shown.append((url.with_password(HIDDEN) if url.password else url).human_repr())
        except (ValueError, TypeError):
            shown.append("(not a URL)")
    return ",".join(shown)


def shown_database(database_url: str) -> str:
    try:
        return make_url(database_url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a URL)"


def _cause(exc: BaseException, *secrets: str | None) -> str:
    """`Type: message` on one line, with no password in it (a driver's own error rather
    than SQLAlchemy's wrapping of it)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig.__cause__ or exc.orig
    said = " ".join(str(exc).split()) or "no detail"
    for secret in secrets:
        if secret:
            said = said.replace(secret, HIDDEN)
    return f"{type(exc).__name__}: {said}"


def _amqp_passwords(amqp_url: str) -> list[str | None]:
    passwords: list[str | None] = []
    for part in amqp_url.split(","):
        try:
            passwords.append(URL(part.strip()).password)
        except (ValueError, TypeError):
            passwords.append(None)
    return passwords


def check_amqp_url(amqp_url: str) -> None:
    """Every node URL is `amqp://` or `amqps://` with a host (aio-pika would take
    `not a url` for the default local broker)."""
    try:
        urls = [URL(u) for u in node_urls(amqp_url)]
    except ValueError as exc:
        raise UnusableSetting("AMQP_URL", shown_amqp(amqp_url), str(exc)) from exc
    for url in urls:
        if url.scheme not in ("amqp", "amqps") or not url.host:
            raise UnusableSetting(
                "AMQP_URL", shown_amqp(amqp_url), "not an amqp:// or amqps:// URL with a host"
            )


async def reach_broker(amqp_url: str, timeout: float = CHECK_SECONDS) -> None:
    check_amqp_url(amqp_url)
    try:
        connection = await connect(amqp_url, timeout=timeout)
    except TLSRefused:
        raise  # its own line and exit status (a certificate to fix, not a URL)
    except Exception as exc:  # whatever the client raised: it is the cause to print
        cause = _cause(exc, *_amqp_passwords(amqp_url))
        if isinstance(exc, InvalidFrameError) and "Connection.Close" in str(exc):
            # aiormq keeps no reply text of a Connection.Close answering Connection.Open
            cause = "the broker refused to open the connection (no such vhost, or no access)"
        if len(node_urls(amqp_url)) > 1:
            cause = f"no node answered; the last: {cause}"
        raise UnusableSetting("AMQP_URL", shown_amqp(amqp_url), cause) from exc
    await connection.close()


async def reach_database(database_url: str, timeout: float = CHECK_SECONDS) -> None:
    shown = shown_database(database_url)
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise UnusableSetting("DATABASE_URL", shown, _cause(exc)) from exc
    password = url.password
    if url.drivername != ASYNC_DRIVER:
        raise UnusableSetting("DATABASE_URL", shown, f"not a {ASYNC_DRIVER}:// URL")
    engine = create_async_engine(database_url, connect_args={"timeout": timeout})
    try:
        async with asyncio.timeout(timeout * 2), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise UnusableSetting("DATABASE_URL", shown, _cause(exc, str(password or ""))) from exc
    finally:
        await engine.dispose()


def require(*, amqp_url: str | None = None, database_url: str | None = None) -> None:
    """Check the settings given; if one cannot be used, log one line and exit."""
    checks: list[Callable[[], Awaitable[None]]] = []
    if amqp_url is not None:
        checks.append(lambda: reach_broker(amqp_url))
    if database_url is not None:
        checks.append(lambda: reach_database(database_url))

    async def run() -> None:
        for check in checks:
            await check()

    try:
        asyncio.run(run())
    except UnusableSetting as exc:
        log.critical(str(exc), extra={"setting": exc.setting})
        sys.exit(EXIT_UNUSABLE_SETTING)
    except TLSRefused as exc:
        log.critical(str(exc))
        sys.exit(EXIT_TLS_REFUSED)
