"""group membership comes from group_members

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_column("jobs", "group_id")


def downgrade() -> None:
    op.add_column("jobs", sa.Column("group_id", sa.UUID(), autoincrement=False, nullable=True))
