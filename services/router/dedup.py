"""The router's ledger of job_ids it has accepted: duplicates are not run again.

Kept in SQLite on local disk so it survives a router restart. The intake queue has a
single active consumer, so one router at a time writes it (see docs/design.md).

A job is *claimed* atomically before it is processed and marked *done* once its events
and dispatch are confirmed. A second copy that finds a claim is a duplicate -- unless the
broker redelivered it, which means the router holding the claim died mid-way: then the
job is processed again (its events have deterministic ids, so nothing shows twice).
"""

from __future__ import annotations

import sqlite3
import time
from enum import StrEnum
from pathlib import Path
from uuid import UUID

RETENTION_SECONDS = 30 * 24 * 3600


class Claim(StrEnum):
    NEW = "new"
    PENDING = "pending"
    DONE = "done"


class SeenJobs:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS seen (job_id TEXT PRIMARY KEY, state TEXT NOT NULL, "
            "seen_at REAL NOT NULL)"
        )
        self._db.execute("DELETE FROM seen WHERE seen_at < ?", (time.time() - RETENTION_SECONDS,))

    def claim(self, job_id: UUID) -> Claim:
        inserted = self._db.execute(
            "INSERT OR IGNORE INTO seen (job_id, state, seen_at) VALUES (?, 'pending', ?)",
            (str(job_id), time.time()),
        ).rowcount
        if inserted:
            return Claim.NEW
        row = self._db.execute("SELECT state FROM seen WHERE job_id = ?", (str(job_id),)).fetchone()
        return Claim(row[0])

    def done(self, job_id: UUID) -> None:
        self._db.execute("UPDATE seen SET state = 'done' WHERE job_id = ?", (str(job_id),))

    def release(self, job_id: UUID) -> None:
        """Forget a claim whose processing failed, so the requeued copy is processed."""
        self._db.execute("DELETE FROM seen WHERE job_id = ? AND state = 'pending'", (str(job_id),))

    def close(self) -> None:
        self._db.close()
