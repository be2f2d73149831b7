"""jobs: where each view's fold stopped, so new events are folded onto the stored view

Revision ID: 0010
Revises: 0009

The projection used to re-read and re-parse a job's whole history for every batch that
touched it. A view now records the sort key (occurred_at, rank, event_id) of the last event
folded into it; events that all sort after it are folded onto the stored view, and only an
out-of-order arrival (or a rejection, or a terminal view) re-reads the history. NULL (rows
projected before this revision): the next batch re-reads the history once and fills it.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("folded_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("jobs", sa.Column("folded_rank", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("folded_event", postgresql.UUID(as_uuid=True), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "folded_event")
    op.drop_column("jobs", "folded_rank")
    op.drop_column("jobs", "folded_at")
