"""login throttles: attempts being checked, and an index for the sweep

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("login_throttles") as batch:
        batch.add_column(
            sa.Column("pending", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_index(
        op.f("ix_login_throttles_window_start"), "login_throttles", ["window_start"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_login_throttles_window_start"), table_name="login_throttles")
    with op.batch_alter_table("login_throttles") as batch:
        batch.drop_column("pending")
