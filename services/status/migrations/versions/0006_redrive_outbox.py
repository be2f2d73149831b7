"""redrive outbox: a claimed dead letter's dispatch, published after the claim commits

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
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


def downgrade() -> None:
    op.drop_table("redrive_outbox")
