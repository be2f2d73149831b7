"""job groups

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "group_members",
        sa.Column("job_id", sa.UUID(), nullable=False),
        sa.Column("group_id", sa.UUID(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("compensation", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("compensation_job_id", sa.UUID(), nullable=True),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_group_members")),
    )
    op.create_index(
        "ix_group_members_group", "group_members", ["group_id", "position"], unique=False
    )
    op.create_table(
        "job_groups",
        sa.Column("group_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("group_id", name=op.f("pk_job_groups")),
    )


def downgrade() -> None:
    op.drop_table("job_groups")
    op.drop_index("ix_group_members_group", table_name="group_members")
    op.drop_table("group_members")
