"""The router's ledger of job_ids it has accepted: duplicates are not run again.

Kept in SQLite on local disk so it survives a router restart. The intake queue has a
single active consumer, so one router at a time writes it (see docs/design.md).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from uuid import UUID

RETENTION_SECONDS = 30 * 24 * 3600


class SeenJobs:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS seen (job_id TEXT PRIMARY KEY, seen_at REAL NOT NULL)"
        )
        self._db.execute("DELETE FROM seen WHERE seen_at < ?", (time.time() - RETENTION_SECONDS,))

    def contains(self, job_id: UUID) -> bool:
        row = self._db.execute("SELECT 1 FROM seen WHERE job_id = ?", (str(job_id),)).fetchone()
        return row is not None

    def add(self, job_id: UUID) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO seen (job_id, seen_at) VALUES (?, ?)", (str(job_id), time.time())
        )

    def close(self) -> None:
        self._db.close()
