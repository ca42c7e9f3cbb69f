"""Project operations."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.responses import Response

from palo_api.handlers import Reply, caller, no_content, runtime
from palo_api.schemas import dump_page, dump_project
from palo_api.services import projects


def list_projects(limit: int, offset: int, status: str = "active") -> Reply:
    with runtime().database.read() as session:
        page = projects.list_projects(
            session=session,
            principal=caller(),
            status=status,
            limit=limit,
            offset=offset,
        )
        items = [
            dump_project(p, page.ticket_counts[p.id], page.members[p.id])
            for p in page.projects
        ]
    return dump_page(items, total=page.total, limit=limit, offset=offset), 200


def create_project(body: dict[str, Any]) -> Reply:
    with runtime().database.write() as session:
        project = projects.create_project(
            session=session, principal=caller(), project_in=body
        )
        body = dump_project(project, projects.no_tickets())
    return body, 201, {"Location": f"/v1/projects/{project.id}"}


def get_project(project_id: str) -> Reply:
    with runtime().database.read() as session:
        project = projects.get_project(
            session=session, principal=caller(), project_id=uuid.UUID(project_id)
        )
        counts = projects.count_tickets(session=session, project_ids=[project.id])
        return dump_project(project, counts[project.id]), 200


def update_project(project_id: str, body: dict[str, Any]) -> Reply:
    with runtime().database.write() as session:
        project = projects.update_project(
            session=session,
            principal=caller(),
            project_id=uuid.UUID(project_id),
            project_in=body,
        )
        counts = projects.count_tickets(session=session, project_ids=[project.id])
        return dump_project(project, counts[project.id]), 200


def archive_project(project_id: str) -> Response:
    with runtime().database.write() as session:
        projects.archive_project(
            session=session, principal=caller(), project_id=uuid.UUID(project_id)
        )
    return no_content()
