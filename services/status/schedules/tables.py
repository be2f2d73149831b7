"""The schedules' tables, on the status store's metadata (migration 0008).

`schedule_firings` is both the record that a fire time was claimed (written in the same
transaction as the claim, so it exists before the job does) and the outbox its JobSubmitted
is published from; the job view joins it for `schedule_id`.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Index, Integer, Table, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID

from services.status.tables import metadata

schedules = Table(
    "schedules",
    metadata,
    Column("schedule_id", UUID(as_uuid=True), primary_key=True),
    Column("name", Text, nullable=False),
    Column("cron", Text),
    Column("every_seconds", Integer),
    Column("timezone", Text, nullable=False),
    Column("job", JSONB, nullable=False),
    Column("enabled", Boolean, nullable=False),
    # the next fire time; null while paused. The firer claims a firing by moving it on.
    Column("next_run_at", DateTime(timezone=True)),
    Column("last_run_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_schedules_due", "next_run_at", postgresql_where=text("enabled")),
)

schedule_firings = Table(
    "schedule_firings",
    metadata,
    Column("job_id", UUID(as_uuid=True), primary_key=True),
    Column("schedule_id", UUID(as_uuid=True), nullable=False),
    Column("fire_time", DateTime(timezone=True), nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    Column("body", JSONB, nullable=False),
    Column("published_at", DateTime(timezone=True)),
    Index("ix_schedule_firings_schedule", "schedule_id", "fire_time"),
    Index(
        "ix_schedule_firings_unpublished",
        "claimed_at",
        postgresql_where=text("published_at IS NULL"),
    ),
)
