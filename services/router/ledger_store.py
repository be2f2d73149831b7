"""Where the de-duplication ledger lives: the router-owned table `router_ledger` in the
shared Postgres database (migration 0004), so every router replica sees every claim.

Each method is one statement (or, for a claim some other delivery holds, a few) for a whole
batch of keys, autocommitted; the claim is an
`INSERT ... ON CONFLICT DO NOTHING RETURNING`, so two replicas racing for one key cannot
both win. Leases are judged by the database's clock, never a replica's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.database import make_engine


class Seen(StrEnum):
    """What a claim found."""

    NEW = "new"  # nobody had it: it is ours now
    TAKEN_OVER = "taken_over"  # pending under a lease that ran out (its holder died): ours now
    BUSY = "busy"  # pending under a live lease: another delivery is processing it
    DONE = "done"  # processed already


class LedgerStore(Protocol):
    """The storage operations the ledger needs (Postgres in production, a fake in tests)."""

    async def claim(self, keys: Sequence[str], owner: str, lease: float) -> Mapping[str, Seen]: ...

    async def finish(self, keys: Sequence[str], owner: str) -> None: ...

    async def release(self, keys: Sequence[str], owner: str) -> None: ...

    async def renew(self, keys: Sequence[str], owner: str, lease: float) -> None: ...

    async def known(self, key: str) -> bool: ...

    async def purge(self, older_than_days: float, limit: int) -> int: ...

    async def close(self) -> None: ...


_INSERT = text(
    "INSERT INTO router_ledger (key, owner, lease_until) "
    "SELECT k, :owner, now() + make_interval(secs => :lease) "
    "FROM unnest(CAST(:keys AS text[])) AS k "
    "ON CONFLICT (key) DO NOTHING RETURNING key"
)
_TAKE_OVER = text(
    "UPDATE router_ledger SET owner = :owner, lease_until = now() + make_interval(secs => :lease) "
    "WHERE key = ANY(CAST(:keys AS text[])) AND state = 'pending' AND lease_until < now() "
    "RETURNING key"
)
_STATES = text("SELECT key, state FROM router_ledger WHERE key = ANY(CAST(:keys AS text[]))")
_FINISH = text(
    "UPDATE router_ledger SET state = 'done' "
    "WHERE key = ANY(CAST(:keys AS text[])) AND owner = :owner"
)
_RELEASE = text(
    "DELETE FROM router_ledger "
    "WHERE key = ANY(CAST(:keys AS text[])) AND owner = :owner AND state = 'pending'"
)
_RENEW = text(
    "UPDATE router_ledger SET lease_until = now() + make_interval(secs => :lease) "
    "WHERE key = ANY(CAST(:keys AS text[])) AND owner = :owner AND state = 'pending'"
)
_KNOWN = text("SELECT 1 FROM router_ledger WHERE key = :key")
_PING = text("SELECT 1")
# SKIP LOCKED: replicas purging at the same moment take different rows instead of waiting.
_PURGE = text(
    "DELETE FROM router_ledger WHERE key IN ("
    " SELECT key FROM router_ledger"
    " WHERE claimed_at < now() - make_interval(secs => :age)"
    " ORDER BY claimed_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
)


class PostgresLedgerStore:
    def __init__(self, database_url: str) -> None:
        # Every statement here is atomic on its own (a claim's later statements are new
        # statements anyway, to see what other replicas committed meanwhile), so they run
        # in autocommit: no BEGIN and COMMIT round trips around each. No pre-ping either: a
        # connection lost with the database fails its statement, SQLAlchemy drops the
        # pool's stale connections, and the ledger retries (`Ledger._db`) on a new one.
        # No overflow: an overflow connection is closed as soon as it is returned, so under
        # load the pool opened and closed one per batch (a TLS-probing asyncpg connect: a
        # twentieth of the router's CPU in the bench profile); five kept open instead.
        self._engine: AsyncEngine = make_engine(
            database_url,
            isolation_level="AUTOCOMMIT",
            pool_size=5,
            max_overflow=0,
            pool_timeout=10,
        )

    async def claim(self, keys: Sequence[str], owner: str, lease: float) -> Mapping[str, Seen]:
        params = {"owner": owner, "lease": lease}
        async with self._engine.begin() as conn:
            rows = await conn.execute(_INSERT, {**params, "keys": list(keys)})
            seen = {key: Seen.NEW for (key,) in rows}
            rest = [k for k in keys if k not in seen]
            if rest:  # a new statement: sees rows other replicas committed meanwhile
                rows = await conn.execute(_TAKE_OVER, {**params, "keys": rest})
                seen.update({key: Seen.TAKEN_OVER for (key,) in rows})
                rest = [k for k in rest if k not in seen]
            if rest:
                result = await conn.execute(_STATES, {"keys": rest})
                states: dict[str, str] = {key: state for key, state in result}
                # absent: released by its holder a moment ago -- its copy is being handed back
                seen.update({k: Seen.DONE if states.get(k) == "done" else Seen.BUSY for k in rest})
        return seen

    async def finish(self, keys: Sequence[str], owner: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(_FINISH, {"keys": list(keys), "owner": owner})

    async def release(self, keys: Sequence[str], owner: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(_RELEASE, {"keys": list(keys), "owner": owner})

    async def renew(self, keys: Sequence[str], owner: str, lease: float) -> None:
        async with self._engine.begin() as conn:
            if keys:
                await conn.execute(_RENEW, {"keys": list(keys), "owner": owner, "lease": lease})
            else:
                await conn.execute(_PING)

    async def known(self, key: str) -> bool:
        async with self._engine.connect() as conn:
            return (await conn.execute(_KNOWN, {"key": key})).first() is not None

    async def purge(self, older_than_days: float, limit: int) -> int:
        async with self._engine.begin() as conn:
            result = await conn.execute(_PURGE, {"age": older_than_days * 86400.0, "limit": limit})
            return int(result.rowcount)

    async def close(self) -> None:
        await self._engine.dispose()
