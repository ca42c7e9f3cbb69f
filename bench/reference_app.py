"""The two references `bench/api_bench.py` measures the API against.

``floor_app`` is the job's floor: a bare Starlette endpoint that answers the
filtered ticket list with the statements that job needs, written by hand and
run through psycopg's async connection pool: the caller's lookup, whether it
may see the project named, the count and the page, in one transaction, and
the same JSON body. It is what the job costs in Python with nothing in the way:
no routing by document, no validation, no ORM, no serialisation schema.

``ceiling_app`` is the ceiling of Python HTTP here: the same server answering
a constant list of 20 tickets.

Both are served like the API (gunicorn, the same uvicorn worker and worker
count); the floor reads its database and caller from ``BENCH_DATABASE_URL``,
``BENCH_USER_ID`` and ``BENCH_CLIENT_ID``.

    gunicorn bench.reference_app:floor_app -k palo_api.serving.UvicornWorker
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CALLER = """
SELECT c.disabled_at, u.org_id, u.org_role, o.plan
FROM api_clients c JOIN users u ON u.id = c.user_id
JOIN organizations o ON o.id = u.org_id
WHERE c.client_id = %(client_id)s AND u.id = %(user_id)s
"""
# An org admin sees every project of the organization; a named project may
# be archived, so the status is not filtered here.
VISIBLE = """
SELECT 1 FROM projects WHERE id = %(project_id)s AND org_id = %(org_id)s
AND (purge_after IS NULL OR purge_after > %(now)s)
"""
FILTERS = """
WHERE org_id = %(org_id)s AND project_id = %(project_id)s AND status = %(status)s
"""
COUNT = "SELECT count(*) FROM tickets " + FILTERS  # noqa: S608 - constants
COLUMNS = (
    "id, project_id, title, description, status, priority, assignee_id,"
    " reporter_id, created_at, updated_at, resolved_at"
)
ORDER = " ORDER BY created_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s"
PAGE = f"SELECT {COLUMNS} FROM tickets {FILTERS} {ORDER}"  # noqa: S608 - constants
TICKET_FIELDS = (
    *("id", "project_id", "title", "description", "status", "priority"),
    *("assignee_id", "reporter_id", "created_at", "updated_at", "resolved_at"),
)


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        text = value.astimezone(UTC).isoformat(timespec="microseconds")
        return text.replace("+00:00", "Z")
    return value


def _json(body: Any) -> Response:
    encoded = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(encoded.encode(), media_type="application/json")


def _floor() -> Starlette:
    pool = AsyncConnectionPool(
        os.environ.get("BENCH_DATABASE_URL", ""), min_size=4, max_size=10, open=False
    )
    caller = {
        "user_id": uuid.UUID(os.environ.get("BENCH_USER_ID", str(uuid.UUID(int=0)))),
        "client_id": os.environ.get("BENCH_CLIENT_ID", ""),
    }

    async def tickets(request: Request) -> Response:
        query = request.query_params
        limit, offset = int(query.get("limit", 20)), int(query.get("offset", 0))
        async with pool.connection() as conn:
            found = await (await conn.execute(CALLER, caller)).fetchone()
            if found is None or found[0] is not None:
                return JSONResponse({"error": "unauthenticated"}, status_code=401)
            params = {
                "org_id": found[1],
                "project_id": uuid.UUID(query["project_id"]),
                "status": query["status"],
                "limit": limit,
                "offset": offset,
                "now": _now(),
            }
            total, page = 0, []
            if await (await conn.execute(VISIBLE, params)).fetchone():
                counted = await (await conn.execute(COUNT, params)).fetchone()
                total = counted[0] if counted else 0
                page = await (await conn.execute(PAGE, params)).fetchall()
        items = [
            {
                name: _plain(value)
                for name, value in zip(TICKET_FIELDS, row, strict=True)
            }
            for row in page
        ]
        pagination = {
            "total": total,
            "limit": limit,
            "offset": offset,
            "has_more": offset + len(items) < total,
        }
        return _json({"data": items, "pagination": pagination})

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await pool.open()
        yield
        await pool.close()

    return Starlette(routes=[Route("/v1/tickets", tickets)], lifespan=lifespan)


def _now() -> datetime:
    return datetime.now(UTC)


TWENTY_TICKETS = [
    {
        "id": str(uuid.UUID(int=n)),
        "project_id": str(uuid.UUID(int=1000)),
        "title": f"Fix login export handling {n}",
        "description": "When the login step runs, the export fails. " * 2,
        "status": "open",
        "priority": "p3",
        "assignee_id": None,
        "reporter_id": str(uuid.UUID(int=2000)),
        "created_at": "2026-11-30T10:00:00.000000Z",
        "updated_at": "2026-11-30T10:00:00.000000Z",
        "resolved_at": None,
    }
    for n in range(20)
]


async def twenty(_request: Request) -> Response:
    """The constant list, serialised per request as any endpoint would."""
    return _json(TWENTY_TICKETS)


floor_app = _floor()
ceiling_app = Starlette(routes=[Route("/v1/tickets", twenty)])
