"""webhooks: registered receivers, a delivery per webhook and event, and each attempt

Revision ID: 0014
Revises: 0013_feed

A delivery is queued in the transaction that records its event and claimed by any
replica's delivery worker with a lease (`lease_until`, `lease_token`); a job's deliveries
go in its events' order (`occurred_at`, `rank`, `event_id`). `webhook_attempts` is the
deliveries log (`GET /webhooks/{id}/deliveries`).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014"
down_revision = "0013_feed"
branch_labels = None
depends_on = None

PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    uuid = postgresql.UUID(as_uuid=True)
    stamp = sa.DateTime(timezone=True)
    op.create_table(
        "webhooks",
        sa.Column("webhook_id", uuid, primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("job_type", sa.Text(), nullable=True),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created_at", stamp, nullable=False),
        sa.PrimaryKeyConstraint("webhook_id", name="pk_webhooks"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("delivery_id", sa.BigInteger(), autoincrement=True),
        sa.Column("webhook_id", uuid, nullable=False),
        sa.Column("event_id", uuid, nullable=False),
        sa.Column("job_id", uuid, nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("occurred_at", stamp, nullable=False),
        sa.Column("rank", sa.SmallInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False, server_default="pending"),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("queued_at", stamp, nullable=False, server_default=sa.func.now()),
        sa.Column("next_try_at", stamp, nullable=False, server_default=sa.func.now()),
        sa.Column("lease_until", stamp, nullable=True),
        sa.Column("lease_token", uuid, nullable=True),
        sa.Column("decided_at", stamp, nullable=True),
        sa.PrimaryKeyConstraint("delivery_id", name="pk_webhook_deliveries"),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhooks.webhook_id"],
            name="fk_webhook_deliveries_webhook_id_webhooks",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries_event"),
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["webhook_id", "next_try_at"],
        postgresql_where=PENDING,
    )
    op.create_index(
        "ix_webhook_deliveries_job_order",
        "webhook_deliveries",
        ["webhook_id", "job_id", "occurred_at", "rank", "event_id"],
        postgresql_where=PENDING,
    )
    op.create_index("ix_webhook_deliveries_decided", "webhook_deliveries", ["decided_at"])
    op.create_table(
        "webhook_attempts",
        sa.Column("attempt_id", sa.BigInteger(), autoincrement=True),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("webhook_id", uuid, nullable=False),
        sa.Column("event_id", uuid, nullable=False),
        sa.Column("job_id", uuid, nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("attempted_at", stamp, nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("next_try_at", stamp, nullable=True),
        sa.PrimaryKeyConstraint("attempt_id", name="pk_webhook_attempts"),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.delivery_id"],
            name="fk_webhook_attempts_delivery_id_webhook_deliveries",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_webhook_attempts_webhook", "webhook_attempts", ["webhook_id", "attempt_id"])
    op.create_index(
        "ix_webhook_attempts_job", "webhook_attempts", ["webhook_id", "job_id", "attempt_id"]
    )
    op.create_index("ix_webhook_attempts_delivery", "webhook_attempts", ["delivery_id"])


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
