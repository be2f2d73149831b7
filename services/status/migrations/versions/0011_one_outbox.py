"""one outbox: every message a decision calls for, in one table with one relay

Revision ID: 0011
Revises: 0010

`outbox` held group submissions only; redrives had `redrive_outbox` (an event and a
dispatch per claimed dead letter) and schedules published from `schedule_firings` itself
(`published_at`). Now `outbox` says where each message goes (exchange, routing key,
priority, headers) and what decided it (`origin`), and every row of the other two is
carried into it, in order: a redrive's JobRedriven as an event batch on `events.status`,
then its dispatch; an unpublished firing's JobSubmitted. `schedule_firings` keeps the
record of each claimed fire time (the job view's `schedule_id`), without body or
`published_at`.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "outbox",
        sa.Column("exchange", sa.Text(), nullable=False, server_default="jobs.intake"),
    )
    op.add_column(
        "outbox",
        sa.Column("routing_key", sa.Text(), nullable=False, server_default="job.submitted"),
    )
    op.alter_column("outbox", "exchange", server_default=None)
    op.alter_column("outbox", "routing_key", server_default=None)
    op.add_column("outbox", sa.Column("priority", sa.SmallInteger(), nullable=True))
    op.add_column("outbox", sa.Column("headers", postgresql.JSONB(), nullable=True))
    op.add_column("outbox", sa.Column("expiration", sa.Float(), nullable=True))
    op.add_column("outbox", sa.Column("origin", sa.Text(), nullable=True))
    op.create_index(
        "ix_outbox_unsent_origin",
        "outbox",
        ["origin"],
        postgresql_where=sa.text("sent_at IS NULL"),
    )
    # redrives: the JobRedriven (as a batch of one), then the dispatch, for each row
    op.execute(
        """
        INSERT INTO outbox (message_id, exchange, routing_key, body, priority, origin, created_at)
        SELECT message_id, exchange, routing_key, body, priority, origin, created_at FROM (
            SELECT gen_random_uuid()::text AS message_id, 'jobs.events' AS exchange,
                   'events.status' AS routing_key,
                   convert_to('{"schema_version"\\:2,"events":[' || event::text || ']}', 'UTF8')
                       AS body,
                   NULL::smallint AS priority, 'redrive:' || dead_letter_id AS origin,
                   created_at, 0 AS part, dead_letter_id
              FROM redrive_outbox
            UNION ALL
            SELECT job->>'job_id', 'jobs.dispatch', job->>'site', convert_to(job::text, 'UTF8'),
                   (job->>'priority')::smallint, 'redrive:' || dead_letter_id,
                   created_at, 1, dead_letter_id
              FROM redrive_outbox
        ) AS moved
        ORDER BY created_at, dead_letter_id, part
        """
    )
    # schedule firings claimed and not yet published
    op.execute(
        """
        INSERT INTO outbox (message_id, exchange, routing_key, body, origin, created_at)
        SELECT job_id::text, 'jobs.intake', 'job.submitted', convert_to(body::text, 'UTF8'),
               'schedule:' || schedule_id::text, claimed_at
          FROM schedule_firings
         WHERE published_at IS NULL
         ORDER BY claimed_at
        """
    )
    op.drop_table("redrive_outbox")
    op.drop_index("ix_schedule_firings_unpublished", table_name="schedule_firings")
    op.drop_column("schedule_firings", "published_at")
    op.drop_column("schedule_firings", "body")
    op.create_index("ix_schedule_firings_fire_time", "schedule_firings", ["fire_time"])


def downgrade() -> None:
    """Back to three outboxes: unsent group submissions stay in `outbox`; unsent firings go
    back to `schedule_firings`; unsent redrives (and other kinds) cannot be expressed by
    revision 0010 and are dropped, so downgrade only with the outbox drained."""
    op.drop_index("ix_schedule_firings_fire_time", table_name="schedule_firings")
    op.add_column(
        "schedule_firings",
        sa.Column("body", postgresql.JSONB(), nullable=False, server_default="{}"),
    )
    op.alter_column("schedule_firings", "body", server_default=None)
    op.add_column(
        "schedule_firings", sa.Column("published_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute("UPDATE schedule_firings SET published_at = claimed_at")
    op.execute(
        """
        UPDATE schedule_firings f SET published_at = NULL,
               body = convert_from(o.body, 'UTF8')::jsonb
          FROM outbox o
         WHERE o.sent_at IS NULL AND o.origin = 'schedule:' || f.schedule_id::text
           AND o.message_id = f.job_id::text
        """
    )
    op.create_index(
        "ix_schedule_firings_unpublished",
        "schedule_firings",
        ["claimed_at"],
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "redrive_outbox",
        sa.Column("dead_letter_id", sa.Text(), nullable=False),
        sa.Column("job_id", sa.UUID(), nullable=False),
        sa.Column("event", postgresql.JSONB(), nullable=False),
        sa.Column("job", postgresql.JSONB(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("dead_letter_id", name="pk_redrive_outbox"),
    )
    op.execute(
        "DELETE FROM outbox WHERE exchange <> 'jobs.intake' "
        "OR (origin LIKE 'schedule:%' AND sent_at IS NULL)"
    )
    op.drop_index("ix_outbox_unsent_origin", table_name="outbox")
    for column in ("origin", "expiration", "headers", "priority", "routing_key", "exchange"):
        op.drop_column("outbox", column)
