"""Project members: listing, inviting, changing roles and removing."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from palo_api.db.models import Project, ProjectMember, User
from palo_api.db.types import utcnow
from palo_api.errors import Conflict, Forbidden, NotFound, ValidationFailed
from palo_api.schemas import project_member_out
from palo_api.services.auth import Principal
from palo_api.services.events import record_event
from palo_api.services.projects import get_project, role_in

logger = logging.getLogger(__name__)

# One message whether the user exists in another organization or not at all,
# so that a caller cannot probe other tenants' user ids or emails.
UNKNOWN_USER = "no user of your organization has this {field}"
ONE_OF = "give exactly one of user_id and email"


@dataclass(frozen=True)
class MemberPage:
    members: list[ProjectMember]
    total: int


def list_members(
    *,
    session: Session,
    principal: Principal,
    project_id: uuid.UUID,
    limit: int,
    offset: int,
) -> MemberPage:
    """The members of a project the caller can see, newest first."""
    project = get_project(session=session, principal=principal, project_id=project_id)
    query = select(ProjectMember).where(ProjectMember.project_id == project.id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0

    members = list(
        session.scalars(
            query.order_by(ProjectMember.added_at.desc(), ProjectMember.user_id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    return MemberPage(members=members, total=total)


def add_member(
    *,
    session: Session,
    principal: Principal,
    project_id: uuid.UUID,
    member_in: dict[str, Any],
) -> ProjectMember:
    """Add a user of the caller's organization to a project as ``role``."""
    field = _identifying_field(member_in)
    project = _locked_project(session, principal, project_id)
    _require_admin(project, principal, "add members to")
    _require_active(project)

    user = _find_user(session, principal, field, member_in[field])
    if user is None:
        raise ValidationFailed(
            "The user to add is not in your organization.",
            details=[{"field": field, "message": UNKNOWN_USER.format(field=field)}],
        )
    if _membership(project, user.id) is not None:
        raise Conflict(f"User {user.id} is already a member of this project.")

    member = ProjectMember(
        user_id=user.id,
        user=user,
        role=member_in.get("role", "member"),
        added_at=utcnow(),
    )
    project.members.append(member)
    session.flush()

    record_event(
        session=session,
        org_id=principal.org_id,
        project_id=project.id,
        event_type="member.invited",
        data=project_member_out.dump(member),
    )
    session.commit()
    logger.info(
        "user %s added to project %s as %s by %s",
        user.id,
        project.id,
        member.role,
        principal.user_id,
    )
    return member


def change_role(
    *,
    session: Session,
    principal: Principal,
    project_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str,
) -> ProjectMember:
    """Give a member another role; the project always keeps an admin."""
    project = _locked_project(session, principal, project_id)
    _require_admin(project, principal, "change roles in")
    _require_active(project)
    member = _require_member(project, user_id)
    if member.role == role:
        return member

    if member.role == "admin":
        _keep_an_admin(project, "demote")
    member.role = role
    session.commit()
    logger.info(
        "user %s is now %s in project %s, set by %s",
        user_id,
        role,
        project.id,
        principal.user_id,
    )
    return member


def remove_member(
    *,
    session: Session,
    principal: Principal,
    project_id: uuid.UUID,
    user_id: uuid.UUID,
) -> None:
    """Remove a member; any member may leave, only admins remove others."""
    project = _locked_project(session, principal, project_id)
    if user_id != principal.user_id:
        _require_admin(project, principal, "remove members from")
    _require_active(project)
    member = _require_member(project, user_id)

    if member.role == "admin":
        _keep_an_admin(project, "remove")
    # Tickets keep their assignee: history stays readable, and an admin can
    # reassign them deliberately.
    project.members.remove(member)
    session.commit()
    logger.info(
        "user %s removed from project %s by %s", user_id, project.id, principal.user_id
    )


def _identifying_field(member_in: dict[str, Any]) -> str:
    given = [field for field in ("user_id", "email") if field in member_in]
    if len(given) != 1:
        raise ValidationFailed(
            "Identify the user by exactly one of user_id and email.",
            details=[
                {"field": field, "message": ONE_OF} for field in ("user_id", "email")
            ],
        )
    return given[0]


def _locked_project(
    session: Session, principal: Principal, project_id: uuid.UUID
) -> Project:
    # The row lock serialises every membership change of one project, so the
    # last-admin check reads the members as they will be when it commits.
    return get_project(
        session=session, principal=principal, project_id=project_id, for_update=True
    )


def _require_active(project: Project) -> None:
    if project.status == "archived":
        raise Conflict(
            "The project is archived; restore it with status 'active' first.",
            code="project_archived",
        )


def _require_admin(project: Project, principal: Principal, action: str) -> None:
    if role_in(project, principal) != "admin":
        raise Forbidden(f"Only a project admin may {action} this project.")


def _find_user(
    session: Session, principal: Principal, field: str, value: str
) -> User | None:
    in_org = select(User).where(User.org_id == principal.org_id)
    if field == "user_id":
        return session.scalar(in_org.where(User.id == uuid.UUID(value)))
    if "\x00" in value:
        return None  # no stored email holds NUL, and PostgreSQL refuses it
    # Emails are stored lower-cased (admin.create_user), so lower-casing the
    # input matches case-insensitively and keeps the unique index in use.
    return session.scalar(in_org.where(User.email == value.lower()))


def _membership(project: Project, user_id: uuid.UUID) -> ProjectMember | None:
    return next((m for m in project.members if m.user_id == user_id), None)


def _require_member(project: Project, user_id: uuid.UUID) -> ProjectMember:
    member = _membership(project, user_id)
    if member is None:
        raise NotFound(f"User {user_id} is not a member of this project.")
    return member


def _keep_an_admin(project: Project, action: str) -> None:
    admins = sum(1 for m in project.members if m.role == "admin")
    if admins <= 1:
        raise Conflict(
            f"Cannot {action} the last admin of the project; make another "
            "member admin first.",
            code="last_admin",
        )
