"""tickets: list indexes, comment ids in history, append-only history

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TICKET_LIST_INDEXES = {
    "ix_tickets_org_created": (["org_id", "created_at", "id"], ["project_id"]),
    "ix_tickets_org_status_created": (
        ["org_id", "status", "created_at", "id"],
        ["project_id"],
    ),
    "ix_tickets_org_priority_created": (
        ["org_id", "priority", "created_at", "id"],
        ["project_id"],
    ),
    "ix_tickets_project_created": (["project_id", "created_at", "id"], ["org_id"]),
    "ix_tickets_project_status_created": (
        ["project_id", "status", "created_at", "id"],
        ["org_id"],
    ),
    "ix_tickets_assignee_created": (
        ["assignee_id", "created_at", "id"],
        ["org_id", "project_id"],
    ),
}

_POSTGRES_TRIGGER = """
CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       OR EXISTS (SELECT 1 FROM tickets WHERE id = OLD.ticket_id) THEN
        RAISE EXCEPTION 'audit events are append-only while their ticket exists'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN OLD;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
"""

_SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only while their ticket exists'); END
    """,
    """
    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    WHEN EXISTS (SELECT 1 FROM tickets WHERE id = OLD.ticket_id)
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only while their ticket exists'); END
    """,
)


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("comment_id", sa.Uuid(), nullable=True))

    # The ticket list indexes, in list order; on PostgreSQL each carries the
    # other tenant column so that counts stay inside the index.
    for name in (
        "ix_tickets_assignee",
        "ix_tickets_org_created",
        "ix_tickets_project_created",
    ):
        op.drop_index(name, table_name="tickets")
    for name, (columns, include) in _TICKET_LIST_INDEXES.items():
        op.create_index(name, "tickets", columns, postgresql_include=include)

    op.drop_index("ix_comments_ticket_created", table_name="comments")
    op.create_index(
        "ix_comments_ticket_created", "comments", ["ticket_id", "created_at", "id"]
    )
    op.drop_index("ix_audit_events_ticket_created", table_name="audit_events")
    op.create_index(
        "ix_audit_events_ticket_created",
        "audit_events",
        ["ticket_id", "created_at", "id"],
    )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(_POSTGRES_TRIGGER)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION audit_events_append_only()")
    else:
        op.execute("DROP TRIGGER audit_events_no_update")
        op.execute("DROP TRIGGER audit_events_no_delete")

    op.drop_index("ix_audit_events_ticket_created", table_name="audit_events")
    op.create_index(
        "ix_audit_events_ticket_created", "audit_events", ["ticket_id", "created_at"]
    )
    op.drop_index("ix_comments_ticket_created", table_name="comments")
    op.create_index(
        "ix_comments_ticket_created", "comments", ["ticket_id", "created_at"]
    )
    for name in _TICKET_LIST_INDEXES:
        op.drop_index(name, table_name="tickets")
    op.create_index("ix_tickets_assignee", "tickets", ["assignee_id"])
    op.create_index("ix_tickets_org_created", "tickets", ["org_id", "created_at", "id"])
    op.create_index(
        "ix_tickets_project_created", "tickets", ["project_id", "created_at", "id"]
    )
    with op.batch_alter_table("audit_events") as batch_op:
        batch_op.drop_column("comment_id")
