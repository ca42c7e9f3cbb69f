"""Projects: creation, visibility, updates, archiving and restoring."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, Select, func, or_, select
from sqlalchemy.orm import Session, lazyload, raiseload, selectinload
from sqlalchemy.orm.attributes import flag_modified

from palo_api.db.models import TICKET_STATUSES, Project, ProjectMember, Ticket, User
from palo_api.db.types import utcnow
from palo_api.errors import Conflict, Forbidden, NotFound, ValidationFailed
from palo_api.schemas import dump_project
from palo_api.services.auth import Principal
from palo_api.services.events import record_event

logger = logging.getLogger(__name__)

RETENTION = timedelta(days=90)
UPDATABLE_FIELDS = ("name", "description", "status", "settings")
# Settings are configuration, not storage: a cap keeps every project, and a
# page of 100 of them, a few megabytes at most.
MAX_SETTINGS_BYTES = 16 * 1024
# A project's members, each with the user it shows (name and email), in one
# more query; not the users' organizations, which every user row would
# otherwise join and load, and no project body shows.
WITH_MEMBERS = (
    selectinload(Project.members)
    .joinedload(ProjectMember.user)
    .options(lazyload(User.organization)),
)


@dataclass(frozen=True)
class ProjectPage:
    projects: list[Project]
    # Each project's members as rows (user_id, email, name, role, added_at),
    # oldest first: a page holds hundreds, which as ORM objects with their
    # users cost more than everything else in the request.
    members: dict[uuid.UUID, list[Any]]
    ticket_counts: dict[uuid.UUID, dict[str, int]]
    total: int


def list_projects(
    *, session: Session, principal: Principal, status: str, limit: int, offset: int
) -> ProjectPage:
    """The projects the caller can see with ``status``, newest first."""
    query = _visible(principal).where(Project.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0

    projects = list(
        session.scalars(
            query.options(raiseload(Project.members))
            .order_by(Project.created_at.desc(), Project.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    ids = [p.id for p in projects]
    counts = count_tickets(session=session, project_ids=ids)
    return ProjectPage(
        projects=projects,
        members=_member_rows(session, ids),
        ticket_counts=counts,
        total=total,
    )


def _member_rows(
    session: Session, project_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[Any]]:
    members: dict[uuid.UUID, list[Any]] = {pid: [] for pid in project_ids}
    if not project_ids:
        return members
    rows = session.execute(
        select(
            ProjectMember.project_id,
            ProjectMember.user_id,
            User.email,
            User.name,
            ProjectMember.role,
            ProjectMember.added_at,
        )
        .join(User, User.id == ProjectMember.user_id)
        .where(ProjectMember.project_id.in_(project_ids))
        .order_by(ProjectMember.added_at)
    )
    for row in rows:
        members[row.project_id].append(row)
    return members


def get_project(
    *,
    session: Session,
    principal: Principal,
    project_id: uuid.UUID,
    for_update: bool = False,
    for_share: bool = False,
) -> Project:
    """A project the caller can see, or NotFound (never Forbidden: no leaks).

    ``for_update`` locks its row until the transaction ends, so that
    concurrent changes to one project apply one after the other;
    ``for_share`` only keeps it from changing (being archived, say) while
    the transaction writes beneath it.
    """
    query = _visible(principal).where(Project.id == project_id).options(*WITH_MEMBERS)
    if for_update:
        query = query.with_for_update(of=Project)
    elif for_share:
        query = query.with_for_update(read=True, of=Project)
    project = session.scalar(query)
    if project is None or (
        (for_update or for_share) and _past_retention(project, utcnow())
    ):
        # The query's clock was read before waiting for the lock, which the
        # purge may have held while it pulled purge_after down to its start:
        # judged by the time now, a project being purged is gone.
        raise NotFound(f"Project {project_id} does not exist.")
    return project


def _past_retention(project: Project, now: datetime) -> bool:
    return project.purge_after is not None and project.purge_after <= now


def create_project(
    *, session: Session, principal: Principal, project_in: dict[str, Any]
) -> Project:
    """Create a project; its creator becomes its first admin."""
    _check_settings_size(project_in)
    now = utcnow()
    project = Project(
        id=uuid.uuid4(),
        org_id=principal.org_id,
        name=project_in["name"].strip(),
        description=project_in.get("description"),
        template=project_in.get("template", "custom"),
        status="active",
        settings=project_in.get("settings") or {},
        created_by=principal.user_id,
        created_at=now,
        updated_at=now,
    )
    project.members.append(
        ProjectMember(user_id=principal.user_id, role="admin", added_at=now)
    )
    session.add(project)
    session.flush()

    record_event(
        session=session,
        org_id=principal.org_id,
        project_id=project.id,
        event_type="project.created",
        data=_event_data(project),
    )
    session.commit()
    logger.info("project %s created by %s", project.id, principal.user_id)
    return project


def update_project(
    *,
    session: Session,
    principal: Principal,
    project_id: uuid.UUID,
    project_in: dict[str, Any],
) -> Project:
    """Apply a partial update; ``status`` archives or restores."""
    _check_settings_size(project_in)
    project = get_project(
        session=session, principal=principal, project_id=project_id, for_update=True
    )
    _require_admin(project, principal, "update")
    changes = {
        field: project_in[field] for field in UPDATABLE_FIELDS if field in project_in
    }
    if "name" in changes:
        changes["name"] = changes["name"].strip()
    if project.status == "archived" and changes.get("status") != "active":
        if set(changes) - {"status"}:
            raise Conflict(
                "The project is archived; restore it with status 'active' first.",
                code="project_archived",
            )
        return project  # archiving an archived project changes nothing

    new_status = changes.pop("status", project.status)
    if new_status != project.status:
        _set_status(project, new_status)
    for field, value in changes.items():
        if field == "settings":
            _replace_settings(project, value)
        else:
            setattr(project, field, value)

    if session.is_modified(project):
        project.updated_at = utcnow()
    session.commit()
    return project


def archive_project(
    *, session: Session, principal: Principal, project_id: uuid.UUID
) -> None:
    """Archive (soft-delete) a project; archiving twice changes nothing."""
    project = get_project(
        session=session, principal=principal, project_id=project_id, for_update=True
    )
    _require_admin(project, principal, "archive")

    if project.status != "archived":
        _set_status(project, "archived")
        project.updated_at = utcnow()
        session.commit()
        logger.info("project %s archived by %s", project.id, principal.user_id)


def count_tickets(
    *, session: Session, project_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    """Ticket counts by status for each project, in one query."""
    counts = {pid: no_tickets() for pid in project_ids}
    if not project_ids:
        return counts

    rows = session.execute(
        select(Ticket.project_id, Ticket.status, func.count())
        .where(Ticket.project_id.in_(project_ids))
        .group_by(Ticket.project_id, Ticket.status)
    )
    for project_id, status, count in rows:
        counts[project_id][status] = count
        counts[project_id]["total"] += count
    return counts


def no_tickets() -> dict[str, int]:
    """Ticket counts of a project without tickets."""
    return dict.fromkeys((*TICKET_STATUSES, "total"), 0)


def visible_project_ids(
    principal: Principal, *, active_only: bool
) -> Select[uuid.UUID]:
    """Ids of the projects the caller may see, as a subquery for other lists."""
    return visible_project_ids_for(
        org_id=principal.org_id,
        user_id=principal.user_id,
        org_admin=principal.is_org_admin,
        now=utcnow(),
        active_only=active_only,
    )


def visible_project_ids_for(
    *,
    org_id: uuid.UUID | BindParameter[uuid.UUID],
    user_id: uuid.UUID | BindParameter[uuid.UUID],
    org_admin: bool,
    now: datetime | BindParameter[datetime],
    active_only: bool,
) -> Select[uuid.UUID]:
    """:func:`visible_project_ids` of values or of bound parameters.

    With parameters the query can be built once and kept, for a statement
    run on every request.
    """
    query = _visible_for(org_id, user_id, org_admin, now).with_only_columns(Project.id)
    if active_only:
        query = query.where(Project.status == "active")
    return query


def hidden_project_ids(principal: Principal) -> Select[uuid.UUID]:
    """Ids of the projects of the caller's organization that an org admin
    does not see in lists: archived ones, and those being purged."""
    return select(Project.id).where(
        Project.org_id == principal.org_id,
        or_(Project.status != "active", Project.purge_after <= utcnow()),
    )


def _visible(principal: Principal) -> Select[Project]:
    """Projects of the caller's organization that the caller may see."""
    return _visible_for(
        principal.org_id, principal.user_id, principal.is_org_admin, utcnow()
    )


def _visible_for(
    org_id: uuid.UUID | BindParameter[uuid.UUID],
    user_id: uuid.UUID | BindParameter[uuid.UUID],
    org_admin: bool,
    now: datetime | BindParameter[datetime],
) -> Select[Project]:
    query = select(Project).where(
        Project.org_id == org_id,
        or_(Project.purge_after.is_(None), Project.purge_after > now),
    )
    if org_admin:
        return query
    membership = select(ProjectMember.project_id).where(
        ProjectMember.user_id == user_id
    )
    return query.where(Project.id.in_(membership))


def role_in(project: Project, principal: Principal) -> str | None:
    """The caller's effective role in a project; org admins act as admins."""
    if principal.is_org_admin:
        return "admin"
    for member in project.members:
        if member.user_id == principal.user_id:
            return member.role
    return None


def _require_admin(project: Project, principal: Principal, action: str) -> None:
    if role_in(project, principal) != "admin":
        raise Forbidden(f"Only a project admin may {action} this project.")


def _check_settings_size(project_in: dict[str, Any]) -> None:
    settings = project_in.get("settings")
    if settings is None:
        return
    size = len(json.dumps(settings, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_SETTINGS_BYTES:
        raise ValidationFailed(
            details=[
                {
                    "field": "settings",
                    "message": f"must be at most {MAX_SETTINGS_BYTES} bytes "
                    f"as compact JSON, not {size}",
                }
            ]
        )


def _replace_settings(project: Project, settings: dict[str, Any]) -> None:
    # Compared as JSON text: Python holds 1 == 1.0 == True, so a plain
    # comparison would call {"flag": true} unchanged from {"flag": 1}.
    if _as_json(settings) != _as_json(project.settings):
        project.settings = settings
        flag_modified(project, "settings")


def _as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _set_status(project: Project, status: str) -> None:
    now = utcnow()
    project.status = status
    if status == "archived":
        project.archived_at = now
        project.purge_after = now + RETENTION
    else:
        project.archived_at = None
        project.purge_after = None


def _event_data(project: Project) -> dict[str, Any]:
    # A new project has no tickets yet.
    return dump_project(project, no_tickets())
