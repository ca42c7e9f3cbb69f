"""login throttles: index the window start for the sweep of ended windows

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_login_throttles_window_start"), "login_throttles", ["window_start"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_login_throttles_window_start"), table_name="login_throttles")
