"""login throttles: when the latest attempt took its place

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from palo_api.db.types import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("login_throttles") as batch:
        batch.add_column(sa.Column("pending_since", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("login_throttles") as batch:
        batch.drop_column("pending_since")
