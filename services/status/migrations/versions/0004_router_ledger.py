"""the router's de-duplication ledger (router-owned table)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "router_ledger",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), server_default="pending", nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "claimed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("state IN ('pending', 'done')", name="ck_router_ledger_state"),
        sa.PrimaryKeyConstraint("key", name="pk_router_ledger"),
    )
    op.create_index("ix_router_ledger_claimed_at", "router_ledger", ["claimed_at"])


def downgrade() -> None:
    op.drop_index("ix_router_ledger_claimed_at", table_name="router_ledger")
    op.drop_table("router_ledger")
