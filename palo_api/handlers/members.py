"""Project member operations."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.responses import Response

from palo_api.handlers import Reply, caller, no_content, runtime
from palo_api.schemas import dump_page, project_member_out
from palo_api.services import members


def list_project_members(project_id: str, limit: int, offset: int) -> Reply:
    with runtime().database.read() as session:
        page = members.list_members(
            session=session,
            principal=caller(),
            project_id=uuid.UUID(project_id),
            limit=limit,
            offset=offset,
        )
        items = [project_member_out.dump(m) for m in page.members]
    return dump_page(items, total=page.total, limit=limit, offset=offset), 200


def add_project_member(project_id: str, body: dict[str, Any]) -> Reply:
    with runtime().database.write() as session:
        member = members.add_member(
            session=session,
            principal=caller(),
            project_id=uuid.UUID(project_id),
            member_in=body,
        )
        body = project_member_out.dump(member)
    location = f"/v1/projects/{project_id}/members/{member.user_id}"
    return body, 201, {"Location": location}


def update_project_member(project_id: str, user_id: str, body: dict[str, Any]) -> Reply:
    with runtime().database.write() as session:
        member = members.change_role(
            session=session,
            principal=caller(),
            project_id=uuid.UUID(project_id),
            user_id=uuid.UUID(user_id),
            role=body["role"],
        )
        return project_member_out.dump(member), 200


def remove_project_member(project_id: str, user_id: str) -> Response:
    with runtime().database.write() as session:
        members.remove_member(
            session=session,
            principal=caller(),
            project_id=uuid.UUID(project_id),
            user_id=uuid.UUID(user_id),
        )
    return no_content()
