"""An in-memory LedgerStore with the Postgres store's semantics, for unit tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.router.ledger_store import Seen


@dataclass
class Row:
    state: str
    owner: str
    lease_until: float
    claimed_at: float


class FakeLedgerStore:
    """`now` is the database clock (advance it by hand); `down` makes every call fail
    like a refused connection; `calls` counts round trips."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}
        self.now = 0.0
        self.down = False
        self.calls: list[tuple[str, int]] = []

    def _call(self, name: str, n: int = 1) -> None:
        if self.down:
            raise ConnectionRefusedError("database refuses connections")
        self.calls.append((name, n))

    async def claim(self, keys: Sequence[str], owner: str, lease: float) -> Mapping[str, Seen]:
        self._call("claim", len(keys))
        seen: dict[str, Seen] = {}
        for key in keys:
            row = self.rows.get(key)
            if row is None:
                self.rows[key] = Row("pending", owner, self.now + lease, self.now)
                seen[key] = Seen.NEW
            elif row.state == "done":
                seen[key] = Seen.DONE
            elif row.lease_until < self.now:
                row.owner, row.lease_until = owner, self.now + lease
                seen[key] = Seen.TAKEN_OVER
            else:
                seen[key] = Seen.BUSY
        return seen

    async def finish(self, keys: Sequence[str], owner: str) -> None:
        self._call("finish", len(keys))
        for key in keys:
            if (row := self.rows.get(key)) and row.owner == owner:
                row.state = "done"

    async def release(self, keys: Sequence[str], owner: str) -> None:
        self._call("release", len(keys))
        for key in keys:
            row = self.rows.get(key)
            if row and row.owner == owner and row.state == "pending":
                del self.rows[key]

    async def renew(self, keys: Sequence[str], owner: str, lease: float) -> None:
        self._call("renew", len(keys))
        for key in keys:
            row = self.rows.get(key)
            if row and row.owner == owner and row.state == "pending":
                row.lease_until = self.now + lease

    async def known(self, key: str) -> bool:
        self._call("known")
        return key in self.rows

    async def purge(self, older_than_days: float, limit: int) -> int:
        self._call("purge")
        old = [k for k, r in self.rows.items() if r.claimed_at < self.now - older_than_days * 86400]
        for key in old[:limit]:
            del self.rows[key]
        return len(old[:limit])

    async def close(self) -> None:
        pass
