"""Fill a PostgreSQL database with tickets shaped like a large real tenant.

One big organization holds ``--tickets`` tickets in ``--projects`` projects
(200 by default) of very uneven size (the biggest has 30 % of them), 500 users
of whom a few are org admins, 5 to 50 members per project and a few archived
projects. A share of the tickets (``--activity-share``) has comments and a
history: its creation, a comment event per comment, and a few updates. A few small
organizations of 10,000 tickets each share the tables, as other tenants would.
Statuses follow the age of a ticket: most old tickets are resolved or closed,
most open ones are recent. Rows are written with COPY in creation order, so
the heap is laid out as years of inserts would leave it, and the list indexes
and foreign keys of ``tickets`` are rebuilt once at the end.

    createdb -h 127.0.0.1 -U postgres palo_h_plans
    .venv/bin/python bench/seed_tickets.py \\
        --url postgresql://postgres@127.0.0.1:5432/palo_h_plans --tickets 1000000
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from palo_api.db.migrate import upgrade

DAY = 86_400.0
HISTORY_DAYS = 3 * 365
PRIORITIES = ("p1", "p2", "p3", "p4")
PRIORITY_WEIGHTS = (3, 12, 60, 25)
TEMPLATES = ("software", "ops", "marketing", "custom")
UNASSIGNED_SHARE = 0.40
WORDS = (
    *("login", "export", "invoice", "report", "dashboard", "search", "webhook"),
    *("sync", "upload", "email", "billing", "import", "cache", "timeout", "crash"),
    *("layout", "mobile", "api", "permission", "audit", "calendar", "reminder"),
    *("payment", "checkout", "profile", "avatar", "filter", "sort", "archive"),
)
PROJECT_COLUMNS = (
    *("id", "org_id", "name", "description", "template", "status", "settings"),
    *("created_by", "created_at", "updated_at", "archived_at", "purge_after"),
)
COMMENT_COLUMNS = (
    *("id", "ticket_id", "author_id", "body", "body_html", "mentions"),
    "created_at",
)
HISTORY_COLUMNS = (
    *("id", "org_id", "ticket_id", "actor_id", "action", "comment_id", "changes"),
    *("request_id", "created_at"),
)
TICKET_COLUMNS = (
    *("id", "org_id", "project_id", "title", "description", "status", "priority"),
    *("assignee_id", "reporter_id", "created_at", "updated_at", "resolved_at"),
)
VERBS = ("Fix", "Add", "Improve", "Investigate", "Remove", "Refactor", "Document")


@dataclass(frozen=True)
class OrgShape:
    """How big one organization is and how its tickets spread over projects."""

    name: str
    plan: str
    users: int
    admins: int
    projects: int
    archived: int
    tickets: int
    biggest_share: float


@dataclass
class ProjectSeed:
    """A project's ids and what its tickets draw from."""

    id: uuid.UUID
    org_id: uuid.UUID
    created_at: float
    tickets: int
    writers: list[uuid.UUID] = field(default_factory=list)
    writer_weights: list[float] = field(default_factory=list)


@dataclass
class Seed:
    """Every row but the tickets, and the projects the tickets go into."""

    organizations: list[tuple[Any, ...]] = field(default_factory=list)
    users: list[tuple[Any, ...]] = field(default_factory=list)
    projects: list[tuple[Any, ...]] = field(default_factory=list)
    members: list[tuple[Any, ...]] = field(default_factory=list)
    ticket_projects: list[ProjectSeed] = field(default_factory=list)


def parse_args() -> argparse.Namespace:
    """The command line: target database, size and random seed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="PostgreSQL database URL")
    parser.add_argument(
        "--tickets",
        type=int,
        default=1_000_000,
        help="tickets of the big organization (default 1,000,000)",
    )
    parser.add_argument(
        "--projects",
        type=int,
        default=200,
        help="projects of the big organization (default 200)",
    )
    parser.add_argument(
        "--activity-share",
        type=float,
        default=0.0,
        help="share of tickets with comments and history (default 0)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    parser.add_argument(
        "--small-orgs", type=int, default=3, help="other organizations (default 3)"
    )
    parser.add_argument(
        "--small-org-tickets",
        type=int,
        default=10_000,
        help="tickets of each other organization (default 10,000)",
    )
    return parser.parse_args()


def org_shapes(args: argparse.Namespace) -> list[OrgShape]:
    """The big organization first, then the small ones."""
    archived = max(1, args.projects // 40)
    big = OrgShape(
        "Bigco", "enterprise", 500, 8, args.projects, archived, args.tickets, 0.30
    )
    small = [
        OrgShape(f"Smallco {n}", "business", 40, 2, 8, 1, args.small_org_tickets, 0.4)
        for n in range(1, args.small_orgs + 1)
    ]
    return [big, *small]


def new_uuid(rng: random.Random) -> uuid.UUID:
    """A version 4 UUID drawn from ``rng``, so a seed repeats its ids."""
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def project_sizes(shape: OrgShape, rng: random.Random) -> list[int]:
    """Ticket counts per project, biggest first, summing to ``shape.tickets``."""
    biggest = round(shape.tickets * shape.biggest_share)
    # A power law with some noise: a long tail of small projects behind a
    # few big ones, as in any organization that has grown for years.
    weights = [
        (rank + 3) ** -1.5 * rng.lognormvariate(0, 0.4)
        for rank in range(1, shape.projects)
    ]
    total = sum(weights)
    rest = [int((shape.tickets - biggest) * w / total) for w in weights]
    rest[0] += shape.tickets - biggest - sum(rest)
    return [biggest, *sorted(rest, reverse=True)]


def build_org(shape: OrgShape, seed: Seed, rng: random.Random, now: float) -> None:
    """Add one organization with its users, projects and members to ``seed``."""
    org_id = new_uuid(rng)
    start = now - HISTORY_DAYS * DAY
    slug = shape.name.lower().replace(" ", "")
    seed.organizations.append((org_id, shape.name, shape.plan, _at(start - 30 * DAY)))

    user_ids = [new_uuid(rng) for _ in range(shape.users)]
    for n, user_id in enumerate(user_ids):
        role = "admin" if n < shape.admins else "member"
        joined = _at(start + rng.random() * (HISTORY_DAYS - 30) * DAY)
        email = f"user{n:04d}@{slug}.example"
        seed.users.append((user_id, org_id, email, f"User {n}", role, joined))

    sizes = project_sizes(shape, rng)
    archived = set(rng.sample(range(5, shape.projects), shape.archived))
    for rank, size in enumerate(sizes):
        project = _build_project(shape, seed, rng, now, org_id, user_ids, rank, size)
        _add_project_row(seed, rng, now, project, user_ids, rank, rank in archived)
        seed.ticket_projects.append(project)


def _build_project(
    shape: OrgShape,
    seed: Seed,
    rng: random.Random,
    now: float,
    org_id: uuid.UUID,
    user_ids: list[uuid.UUID],
    rank: int,
    size: int,
) -> ProjectSeed:
    """A project with its members; bigger projects have more of them."""
    # The biggest project is the oldest: it has been there from the start.
    start = now - HISTORY_DAYS * DAY
    created = start + (rank > 0) * rng.random() * (HISTORY_DAYS - 60) * DAY
    project = ProjectSeed(new_uuid(rng), org_id, created, size)

    spread = 1 - rank / max(shape.projects - 1, 1)
    count = min(len(user_ids), 5 + round(45 * spread * rng.uniform(0.7, 1.0)))
    for n, user_id in enumerate(rng.sample(user_ids, count)):
        role = "admin" if n < 2 else "viewer" if rng.random() < 0.15 else "member"
        added = _at(created + rng.random() * (now - created))
        seed.members.append((project.id, user_id, role, added))
        if role != "viewer":
            project.writers.append(user_id)
            # A few people carry most of a project's assigned work.
            project.writer_weights.append(1 / (len(project.writers) ** 0.8))
    return project


def _add_project_row(
    seed: Seed,
    rng: random.Random,
    now: float,
    project: ProjectSeed,
    user_ids: list[uuid.UUID],
    rank: int,
    archived: bool,
) -> None:
    created = _at(project.created_at)
    archived_at = purge_after = None
    if archived:
        when = now - rng.uniform(1, 60) * DAY
        archived_at, purge_after = _at(when), _at(when + 90 * DAY)
    seed.projects.append(
        (
            project.id,
            project.org_id,
            f"Project {rank:03d}",
            None,
            rng.choice(TEMPLATES),
            "archived" if archived else "active",
            "{}",
            project.writers[0] if project.writers else user_ids[0],
            created,
            archived_at or created,
            archived_at,
            purge_after,
        )
    )


def ticket_keys(
    projects: Sequence[ProjectSeed], rng: random.Random, now: float
) -> list[tuple[float, int]]:
    """(creation time, project index) of every ticket, oldest first.

    Each project's volume grows linearly from its creation to now, so recent
    months hold more tickets than early ones.
    """
    keys = []
    for index, project in enumerate(projects):
        span = now - project.created_at
        keys.extend(
            (project.created_at + span * rng.random() ** 0.8, index)
            for _ in range(project.tickets)
        )
    keys.sort()
    return keys


def ticket_rows(
    keys: Iterable[tuple[float, int]],
    projects: Sequence[ProjectSeed],
    rng: random.Random,
    now: float,
) -> Iterator[tuple[Any, ...]]:
    """Rows of ``tickets`` in the order of ``keys``."""
    for created, index in keys:
        project = projects[index]
        age_days = (now - created) / DAY
        status = _status(age_days, rng)
        resolved = None
        if status in ("resolved", "closed"):
            resolved = min(now, created + rng.expovariate(1 / 7) * DAY)
        updated = resolved or min(now, created + rng.expovariate(1 / 2) * DAY)
        assignee = None
        if project.writers and rng.random() >= UNASSIGNED_SHARE:
            assignee = rng.choices(project.writers, project.writer_weights)[0]
        yield (
            new_uuid(rng),
            project.org_id,
            project.id,
            _title(rng),
            _description(rng),
            status,
            rng.choices(PRIORITIES, PRIORITY_WEIGHTS)[0],
            assignee,
            rng.choice(project.writers) if project.writers else assignee,
            _at(created),
            _at(updated),
            _at(resolved) if resolved else None,
        )


def sampled(
    rows: Iterable[tuple[Any, ...]],
    share: float,
    rng: random.Random,
    picked: list[tuple[Any, ...]],
) -> Iterator[tuple[Any, ...]]:
    """``rows`` unchanged, keeping about ``share`` of them in ``picked``."""
    for row in rows:
        if share and rng.random() < share:
            picked.append(row)
        yield row


def activity_rows(
    tickets: Iterable[tuple[Any, ...]],
    projects: dict[uuid.UUID, ProjectSeed],
    rng: random.Random,
    now: float,
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Comments and history rows of ``tickets`` (rows of ``TICKET_COLUMNS``)."""
    comments: list[tuple[Any, ...]] = []
    history: list[tuple[Any, ...]] = []
    for ticket_id, org_id, project_id, title, _, _, priority, *rest in tickets:
        reporter, created = rest[1], rest[2].timestamp()
        writers = projects[project_id].writers or [reporter]
        created_changes = [
            {"field": "title", "from": None, "to": title},
            {"field": "status", "from": None, "to": "open"},
            {"field": "priority", "from": None, "to": priority},
        ]
        history.append(
            _event(rng, org_id, ticket_id, reporter, "ticket.created",
                   None, created_changes, created)
        )  # fmt: skip
        moments = sorted(
            created + rng.random() * min(now - created, 30 * DAY)
            for _ in range(rng.randint(0, 6))
        )
        status = "open"
        for moment in moments:
            actor = rng.choice(writers)
            if rng.random() < 0.6:
                comment_id = new_uuid(rng)
                body = f"Seen again on the {rng.choice(WORDS)} step."
                comments.append(
                    (comment_id, ticket_id, actor, body, f"<p>{body}</p>\n",
                     "[]", _at(moment))
                )  # fmt: skip
                history.append(
                    _event(rng, org_id, ticket_id, actor, "comment.created",
                           comment_id, [], moment)
                )  # fmt: skip
            else:
                after = "in_progress" if status == "open" else "open"
                change = [{"field": "status", "from": status, "to": after}]
                status = after
                history.append(
                    _event(rng, org_id, ticket_id, actor, "ticket.updated",
                           None, change, moment)
                )  # fmt: skip
    return comments, history


def _event(
    rng: random.Random,
    org_id: uuid.UUID,
    ticket_id: uuid.UUID,
    actor: uuid.UUID,
    action: str,
    comment_id: uuid.UUID | None,
    changes: list[dict[str, Any]],
    at: float,
) -> tuple[Any, ...]:
    return (
        new_uuid(rng), org_id, ticket_id, actor, action, comment_id,
        json.dumps(changes), new_uuid(rng), _at(at),
    )  # fmt: skip


def _status(age_days: float, rng: random.Random) -> str:
    # About 10 % open and 4 % in progress overall, nearly all of them recent.
    fresh = math.exp(-age_days / 45)
    draw = rng.random()
    if draw < 0.04 + 0.50 * fresh:
        return "open"
    if draw < 0.06 + 0.75 * fresh:
        return "in_progress"
    return "resolved" if rng.random() < 0.55 else "closed"


def _title(rng: random.Random) -> str:
    return f"{rng.choice(VERBS)} {rng.choice(WORDS)} {rng.choice(WORDS)} handling"


def _description(rng: random.Random) -> str | None:
    if rng.random() < 0.3:
        return None
    step, failing = rng.choice(WORDS), rng.choice(WORDS)
    return f"When the {step} step runs, the {failing} fails. " * rng.randint(1, 8)


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def conninfo(url: str) -> str:
    """A libpq URL for psycopg from a SQLAlchemy one (``postgresql+psycopg://``)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        raise SystemExit("seed_tickets.py needs a PostgreSQL URL")
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def copy_rows(
    conn: psycopg.Connection[Any],
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> int:
    """COPY ``rows`` into ``table``; the number of rows written."""
    written = 0
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
            written += 1
    return written


@contextmanager
def tickets_without_extras(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Drop the secondary indexes and foreign keys of ``tickets``, then rebuild.

    The definitions are read back from the catalog, so the rebuilt table is
    exactly what the migrations made. Checking each foreign key in one pass
    and sorting each index once beats maintaining them row by row.
    """
    indexes = conn.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i"
        " JOIN pg_class c ON c.relname = i.indexname"
        " JOIN pg_index x ON x.indexrelid = c.oid"
        " WHERE i.tablename = 'tickets' AND NOT x.indisprimary"
    ).fetchall()
    foreign_keys = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'tickets'::regclass AND contype = 'f'"
    ).fetchall()
    for name, _ in foreign_keys:
        conn.execute(f'ALTER TABLE tickets DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')

    yield

    conn.execute("SET maintenance_work_mem = '512MB'")
    for _, definition in indexes:
        conn.execute(definition)
    for name, definition in foreign_keys:
        conn.execute(f'ALTER TABLE tickets ADD CONSTRAINT "{name}" {definition}')


def write_seed(conn: psycopg.Connection[Any], seed: Seed) -> None:
    """Everything but the tickets, parents first."""
    copy_rows(
        conn, "organizations", ("id", "name", "plan", "created_at"), seed.organizations
    )
    copy_rows(
        conn,
        "users",
        ("id", "org_id", "email", "name", "org_role", "created_at"),
        seed.users,
    )
    copy_rows(conn, "projects", PROJECT_COLUMNS, seed.projects)
    copy_rows(
        conn,
        "project_members",
        ("project_id", "user_id", "role", "added_at"),
        seed.members,
    )


def main() -> None:
    """Migrate, seed, rebuild the ticket indexes, analyze, and report."""
    args = parse_args()
    # Test data, not secrets: a seeded generator makes runs repeatable.
    rng = random.Random(args.seed)  # noqa: S311
    # Dates count back from now; with the same --seed all else repeats.
    now = float(int(time.time()))
    started = time.perf_counter()

    upgrade(args.url)
    migrated = time.perf_counter()

    with psycopg.connect(conninfo(args.url)) as conn:
        if conn.execute("SELECT count(*) FROM organizations").fetchone() != (0,):
            raise SystemExit("the database already holds data; seed a fresh one")
        seed = Seed()
        for shape in org_shapes(args):
            build_org(shape, seed, rng, now)
        keys = ticket_keys(seed.ticket_projects, rng, now)
        write_seed(conn, seed)
        # Its own generator, so that the tickets are the same whatever the share.
        activity_rng = random.Random(args.seed + 1)  # noqa: S311
        active: list[tuple[Any, ...]] = []
        with tickets_without_extras(conn):
            rows = ticket_rows(keys, seed.ticket_projects, rng, now)
            rows = sampled(rows, args.activity_share, activity_rng, active)
            tickets = copy_rows(conn, "tickets", TICKET_COLUMNS, rows)
            by_id = {project.id: project for project in seed.ticket_projects}
            comments, history = activity_rows(active, by_id, activity_rng, now)
            copy_rows(conn, "comments", COMMENT_COLUMNS, comments)
            copy_rows(conn, "audit_events", HISTORY_COLUMNS, history)
            copied = time.perf_counter()
        conn.commit()
        indexed = time.perf_counter()

        # VACUUM as well as ANALYZE: it sets the visibility map, as
        # autovacuum would have long since on a table this old, so that
        # index-only scans are judged as they would be in production.
        conn.autocommit = True
        conn.execute("VACUUM (ANALYZE)")
        done = time.perf_counter()
        summary = _summary(conn)

    print(
        f"seeded {len(seed.organizations)} organizations, {len(seed.users)} users,"
        f" {len(seed.projects)} projects, {len(seed.members)} memberships,"
        f" {tickets:,} tickets, {len(comments):,} comments,"
        f" {len(history):,} history events"
    )
    print(summary)
    print(
        f"took {done - started:.1f} s: migrate {migrated - started:.1f} s,"
        f" generate + COPY {copied - migrated:.1f} s,"
        f" indexes + foreign keys {indexed - copied:.1f} s,"
        f" VACUUM ANALYZE {done - indexed:.1f} s"
    )


def _summary(conn: psycopg.Connection[Any]) -> str:
    """Per organization: tickets, projects, biggest project, statuses; sizes."""
    lines = []
    for name, tickets, projects, archived, biggest, open_share in conn.execute(
        """
        SELECT o.name, sum(p.n), count(*), count(*) FILTER (WHERE pr.status =
               'archived'), max(p.n), round(100.0 * sum(p.open) / sum(p.n), 1)
        FROM organizations o
        JOIN projects pr ON pr.org_id = o.id
        JOIN (SELECT project_id, count(*) AS n,
                     count(*) FILTER (WHERE status = 'open') AS open
              FROM tickets GROUP BY project_id) p ON p.project_id = pr.id
        GROUP BY o.name ORDER BY sum(p.n) DESC
        """
    ):
        lines.append(
            f"  {name}: {tickets:,} tickets in {projects} projects"
            f" ({archived} archived), biggest {biggest:,}, {open_share} % open"
        )
    sizes = conn.execute(
        "SELECT pg_size_pretty(pg_table_size('tickets')),"
        " pg_size_pretty(pg_indexes_size('tickets'))"
    ).fetchone()
    assert sizes is not None
    lines.append(f"  tickets table {sizes[0]}, its indexes {sizes[1]}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
