"""the event feed's position: each recorded event's writing transaction and sequence

Revision ID: 0013_feed
Revises: 0011

`GET /events` is a cursor over `job_events` in the order the status service recorded
them. A sequence number alone is not that order: a number taken at insert becomes visible
at its transaction's commit, so a reader can see 11 before 10 and pass 10 by. Each event
row therefore carries `feed_xid` (the top-level transaction that wrote it,
`pg_current_xact_id()`) and `feed_seq` (a sequence, the order within that transaction),
and the feed reads in `(feed_xid, feed_seq)` order only below the oldest transaction still
running (`pg_snapshot_xmin(pg_current_snapshot())`): every row below it is final, and
every row written later sorts after it (queries.event_feed).

Rows recorded before this revision take the migrating transaction's id and a sequence in
the order they were recorded.
"""

from alembic import op

revision = "0013_feed"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE job_events_feed_seq AS bigint")
    op.execute("ALTER TABLE job_events ADD COLUMN feed_xid xid8")
    op.execute("ALTER TABLE job_events ADD COLUMN feed_seq bigint")
    op.execute(
        "UPDATE job_events SET feed_xid = pg_current_xact_id(), feed_seq = old.n FROM "
        "(SELECT event_id, row_number() OVER "
        "(ORDER BY recorded_at, occurred_at, rank, event_id) AS n FROM job_events) AS old "
        "WHERE job_events.event_id = old.event_id"
    )
    op.execute(
        "SELECT setval('job_events_feed_seq', "
        "COALESCE((SELECT max(feed_seq) FROM job_events), 0) + 1, false)"
    )
    op.execute("ALTER TABLE job_events ALTER COLUMN feed_xid SET DEFAULT pg_current_xact_id()")
    op.execute(
        "ALTER TABLE job_events ALTER COLUMN feed_seq SET DEFAULT nextval('job_events_feed_seq')"
    )
    op.execute("ALTER TABLE job_events ALTER COLUMN feed_xid SET NOT NULL")
    op.execute("ALTER TABLE job_events ALTER COLUMN feed_seq SET NOT NULL")
    op.execute("ALTER SEQUENCE job_events_feed_seq OWNED BY job_events.feed_seq")
    op.create_index("ix_job_events_feed", "job_events", ["feed_xid", "feed_seq"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_job_events_feed", table_name="job_events")
    op.drop_column("job_events", "feed_seq")  # drops the sequence it owns
    op.drop_column("job_events", "feed_xid")
