"""Postgres tables of the status store (schema changes go through Alembic migrations)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.types import UserDefinedType


class Xid8(UserDefinedType[str]):
    """Postgres `xid8`: a 64-bit transaction id (read and bound as its text, `cast` to it)."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "xid8"


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

jobs = Table(
    "jobs",
    metadata,
    Column("job_id", UUID(as_uuid=True), primary_key=True),
    Column("status", Text, nullable=False),
    Column("job_type", Text),
    Column("site", Text),
    Column("rule", Text),
    Column("reason", Text),
    Column("priority", SmallInteger),
    Column("data_classification", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("max_attempts", Integer),
    Column("params", JSONB),
    Column("result", JSONB),
    Column("error", Text),
    Column("progress", Float),
    Column("progress_message", Text),
    Column("submitted_at", DateTime(timezone=True)),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("status_attempt", Integer, nullable=False, server_default="0"),
    Column("status_rank", Integer, nullable=False, server_default="-1"),
    # newest-first listing key: submitted_at, or the first event seen until it arrives
    Column("listed_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("parent_id", UUID(as_uuid=True)),  # a child job's parent (contract section 6)
    # the sort key of the last event folded into the view (migration 0010)
    Column("folded_at", DateTime(timezone=True)),
    Column("folded_rank", Integer),
    Column("folded_event", UUID(as_uuid=True)),
    Index("ix_jobs_listing", "listed_at", "job_id"),
    Index("ix_jobs_parent_listing", "parent_id", "listed_at", "job_id"),
    Index("ix_jobs_status_listing", "status", "listed_at", "job_id"),
    Index("ix_jobs_site_status", "site", "status"),
    Index("ix_jobs_job_type", "job_type"),
    # retention finds old terminal jobs without scanning the rest
    Index(
        "ix_jobs_finished",
        "finished_at",
        postgresql_where=text("status IN ('rejected', 'succeeded', 'dead_lettered', 'cancelled')"),
    ),
)

job_counts = Table(
    "job_counts",
    metadata,
    Column("site", Text, primary_key=True),  # '' for a job not placed yet
    Column("status", Text, primary_key=True),
    Column("n", BigInteger, nullable=False),
)
"""Jobs by (site, status), kept exact by triggers on `jobs` (migration 0009): GET /stats."""

job_events = Table(
    "job_events",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("job_id", UUID(as_uuid=True), nullable=False),
    Column("type", Text, nullable=False),
    Column("rank", SmallInteger, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("payload", JSONB, nullable=False),
    # the feed's position (migration 0013): the writing transaction, then a sequence;
    # both filled by the database at insert (queries.event_feed reads in this order)
    Column("feed_xid", Xid8(), nullable=False, server_default=text("pg_current_xact_id()")),
    Column(
        "feed_seq",
        BigInteger,
        nullable=False,
        server_default=text("nextval('job_events_feed_seq')"),
    ),
    Index("ix_job_events_job", "job_id", "occurred_at", "rank"),
    Index("ix_job_events_feed", "feed_xid", "feed_seq", unique=True),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
    Column("id", Text, nullable=False, unique=True),
    Column("job_id", UUID(as_uuid=True)),
    Column("job_type", Text),
    Column("site", Text),
    Column("reason", Text, nullable=False),
    Column("detail", Text),
    Column("source_queue", Text),
    Column("dead_lettered_at", DateTime(timezone=True), nullable=False),
    Column("body", Text, nullable=False),  # readable copy (storable, see sanitize.py)
    Column("raw_body", LargeBinary),  # the exact bytes, up to the store's limit
    Column("headers", JSONB, nullable=False),
    Column("redriven_at", DateTime(timezone=True)),
    Index("ix_dead_letters_open", "redriven_at", "seq"),
    Index("ix_dead_letters_dead_lettered_at", "dead_lettered_at"),
)

job_groups = Table(
    "job_groups",
    metadata,
    Column("group_id", UUID(as_uuid=True), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # set once every member ended and every compensation it needs was submitted
    Column("settled_at", DateTime(timezone=True)),
)

group_members = Table(
    "group_members",
    metadata,
    Column("job_id", UUID(as_uuid=True), primary_key=True),
    Column("group_id", UUID(as_uuid=True), nullable=False),
    Column("position", Integer, nullable=False),
    Column("compensation", JSONB),
    Column("compensation_job_id", UUID(as_uuid=True)),
    # the coordinator's own record of how the member ended (from the job-ending events)
    Column("outcome", Text),
    Column("site", Text),  # where the member ran (its compensation runs there too)
    Column("data_classification", Text),
    Column("priority", SmallInteger),
    Index("ix_group_members_group", "group_id", "position"),
    Index("ix_group_members_open", "job_id", postgresql_where=text("outcome IS NULL")),
)

# the one outbox: every message a decision calls for (group members and compensations,
# redrives, schedule firings, cancellations, lapsed leases' retries), written in the same
# transaction as the decision and published after it by the relay (adapters/outbox.py);
# migration 0011 carried the rows of the former redrive_outbox and schedule_firings into it
outbox = Table(
    "outbox",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
    Column("message_id", Text, nullable=False),
    Column("exchange", Text, nullable=False),
    Column("routing_key", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("priority", SmallInteger),
    Column("headers", JSONB),
    Column("expiration", Float),  # seconds
    Column("origin", Text),  # what decided it (`schedule:<id>`, `redrive:<id>`...)
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True)),
    Index("ix_outbox_unsent", "seq", postgresql_where=text("sent_at IS NULL")),
    Index("ix_outbox_sent_at", "sent_at"),
    Index("ix_outbox_unsent_origin", "origin", postgresql_where=text("sent_at IS NULL")),
)

# -- the worker fleet and long attempts' leases (services/status/workers.py) -------------
workers = Table(
    "workers",
    metadata,
    Column("instance", UUID(as_uuid=True), primary_key=True),  # one worker process
    Column("worker", Text, nullable=False),
    Column("site", Text, nullable=False),
    Column("job_types", JSONB, nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("running", JSONB, nullable=False),
    Column("interval_seconds", Float, nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),  # status service's clock
    Index("ix_workers_last_seen", "last_seen"),
)

leases = Table(
    "leases",
    metadata,
    Column("job_id", UUID(as_uuid=True), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("instance", UUID(as_uuid=True), primary_key=True),
    Column("worker", Text, nullable=False),
    Column("job", JSONB, nullable=False),  # the placed job, to retry it if the lease lapses
    Column("lease_seconds", Float, nullable=False),
    Column("retry_base_seconds", Float, nullable=False),
    Column("retry_max_seconds", Float, nullable=False),
    Column("renewed_at", DateTime(timezone=True), nullable=False),  # status service's clock
)


# -- schedules (migration 0008): a firing is recorded in the claim's transaction, so it
# exists before its job does; the job view joins it for `schedule_id` ----------------
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
    Index("ix_schedule_firings_schedule", "schedule_id", "fire_time"),
    Index("ix_schedule_firings_fire_time", "fire_time"),
)


# -- webhooks (migration 0014): a delivery per webhook and event, queued in the transaction
# that records the event; claimed by any replica's delivery worker with a lease ----------
webhooks = Table(
    "webhooks",
    metadata,
    Column("webhook_id", UUID(as_uuid=True), primary_key=True),
    Column("url", Text, nullable=False),
    Column("events", ARRAY(Text), nullable=False),
    Column("job_type", Text),
    Column("secret", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("delivery_id", BigInteger, primary_key=True, autoincrement=True),
    Column(
        "webhook_id",
        UUID(as_uuid=True),
        ForeignKey("webhooks.webhook_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("job_id", UUID(as_uuid=True), nullable=False),
    Column("event_type", Text, nullable=False),
    # the event's sort key (projection.sort_key): a job's deliveries go in this order
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("rank", SmallInteger, nullable=False),
    Column("body", Text, nullable=False),  # the event's JSON, exactly as signed and sent
    Column("state", Text, nullable=False, server_default="pending"),  # delivered, failed
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("queued_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("next_try_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("lease_until", DateTime(timezone=True)),
    Column("lease_token", UUID(as_uuid=True)),
    Column("decided_at", DateTime(timezone=True)),
    UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries_event"),
    Index(
        "ix_webhook_deliveries_due",
        "webhook_id",
        "next_try_at",
        postgresql_where=text("state = 'pending'"),
    ),
    Index(
        "ix_webhook_deliveries_job_order",
        "webhook_id",
        "job_id",
        "occurred_at",
        "rank",
        "event_id",
        postgresql_where=text("state = 'pending'"),
    ),
    Index("ix_webhook_deliveries_decided", "decided_at"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("attempt_id", BigInteger, primary_key=True, autoincrement=True),
    Column(
        "delivery_id",
        BigInteger,
        ForeignKey("webhook_deliveries.delivery_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("webhook_id", UUID(as_uuid=True), nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("job_id", UUID(as_uuid=True), nullable=False),
    Column("event_type", Text, nullable=False),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Column("outcome", Text, nullable=False),  # delivered, retrying, failed
    Column("status_code", Integer),
    Column("error", Text),
    Column("next_try_at", DateTime(timezone=True)),
    Index("ix_webhook_attempts_webhook", "webhook_id", "attempt_id"),
    Index("ix_webhook_attempts_job", "webhook_id", "job_id", "attempt_id"),
    Index("ix_webhook_attempts_delivery", "delivery_id"),
)
