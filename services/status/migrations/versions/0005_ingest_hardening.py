"""dead letters keep raw bytes; outbox; group coordinator state; retention indexes

Revision ID: 0005
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None

TERMINAL = "status IN ('rejected', 'succeeded', 'dead_lettered', 'cancelled')"


def upgrade() -> None:
    op.add_column("dead_letters", sa.Column("raw_body", sa.LargeBinary(), nullable=True))
    op.create_index("ix_dead_letters_dead_lettered_at", "dead_letters", ["dead_lettered_at"])
    op.create_index("ix_jobs_finished", "jobs", ["finished_at"], postgresql_where=sa.text(TERMINAL))
    op.add_column("job_groups", sa.Column("settled_at", sa.DateTime(timezone=True)))
    for name, kind in (
        ("outcome", sa.Text()),
        ("site", sa.Text()),
        ("data_classification", sa.Text()),
        ("priority", sa.SmallInteger()),
    ):
        op.add_column("group_members", sa.Column(name, kind, nullable=True))
    op.create_index(
        "ix_group_members_open",
        "group_members",
        ["job_id"],
        postgresql_where=sa.text("outcome IS NULL"),
    )
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox")),
    )
    op.create_index(
        "ix_outbox_unsent", "outbox", ["seq"], postgresql_where=sa.text("sent_at IS NULL")
    )
    op.create_index("ix_outbox_sent_at", "outbox", ["sent_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_sent_at", table_name="outbox")
    op.drop_index("ix_outbox_unsent", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_group_members_open", table_name="group_members")
    for name in ("priority", "data_classification", "site", "outcome"):
        op.drop_column("group_members", name)
    op.drop_column("job_groups", "settled_at")
    op.drop_index("ix_jobs_finished", table_name="jobs")
    op.drop_index("ix_dead_letters_dead_lettered_at", table_name="dead_letters")
    op.drop_column("dead_letters", "raw_body")
