"""EXPLAIN (ANALYZE, BUFFERS) of the ticket list for typical callers and filters.

The statements are the service's own: each case calls
``palo_api.services.tickets.list_tickets`` on a real session and records the
SQL and parameters it sends (``_conditions`` included), so this script cannot
drift from the service. Each recorded statement is explained with the same
parameters, best of five warm runs, for the first page, a deep page (offset
10,000) and the count. Timings come from ``EXPLAIN (ANALYZE, BUFFERS, TIMING
OFF)``: per-node timing would add a clock read per row, which on a count of a
million rows costs more than the count. The full plans of slow cases are
printed with timing on.

Cases slower than 50 ms for a page or 300 ms for a count are marked SLOW.

    .venv/bin/python bench/ticket_plans.py \\
        --url postgresql://postgres@127.0.0.1:5432/palo_h_plans
"""

from __future__ import annotations

import argparse
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.sql import Literal
from sqlalchemy import (
    Connection,
    Engine,
    event,
    text,
)
from sqlalchemy.orm import Session

from palo_api.db.engine import build_engine
from palo_api.services import tickets
from palo_api.services.auth import Principal
from palo_api.services.tickets import TicketFilters, TicketPage

PAGE = 20
DEEP_OFFSET = 10_000
SLOW_PAGE_MS = 50.0
SLOW_COUNT_MS = 300.0
RUNS = 5

# A function called like list_tickets: the service's own, or a proposed rewrite.
Lister = Callable[..., TicketPage]


@dataclass(frozen=True)
class Case:
    """One caller with one set of filters."""

    name: str
    principal: Principal
    filters: TicketFilters


@dataclass(frozen=True)
class Explained:
    """What the EXPLAIN ANALYZE runs of one statement showed."""

    ms: float
    rows: int
    hit: int
    read: int
    scans: str
    text: str


@dataclass(frozen=True)
class Row:
    """The three explained statements of one case."""

    case: Case
    page: Explained
    deep: Explained
    count: Explained | None


def parse_args() -> argparse.Namespace:
    """The command line: the seeded database and what to print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="seeded PostgreSQL URL")
    parser.add_argument(
        "--plans", action="store_true", help="print the full plan of every case"
    )
    parser.add_argument(
        "--generic",
        action="store_true",
        help="explain the generic plans a prepared statement may switch to",
    )
    return parser.parse_args()


# --- the callers and filters ------------------------------------------------


def build_cases(engine: Engine) -> list[Case]:
    """The callers and filters to explain, drawn from the biggest organization."""
    with engine.connect() as conn:
        org_id, plan = conn.execute(
            text(
                "SELECT o.id, o.plan FROM organizations o JOIN tickets t"
                " ON t.org_id = o.id GROUP BY o.id ORDER BY count(*) DESC LIMIT 1"
            )
        ).one()
        found = _pick(conn, org_id)

    def principal(user_id: uuid.UUID, role: str) -> Principal:
        return Principal(user_id, org_id, role, plan, "bench", 0)

    admin = principal(found["admin"], "admin")
    member = principal(found["member"], "member")
    biggest = found["biggest"]
    everything = TicketFilters(
        project_id=biggest,
        status="open",
        priority="p2",
        assignee_id=found["assignee"],
        created_after=found["newest"] - timedelta(days=30),
        created_before=found["newest"] + timedelta(seconds=1),
    )
    return [
        Case("admin, no filter", admin, TicketFilters()),
        Case("member (10 projects)", member, TicketFilters()),
        Case("project (biggest)", admin, TicketFilters(project_id=biggest)),
        Case("project + open", admin, TicketFilters(project_id=biggest, status="open")),
        Case("status=open", admin, TicketFilters(status="open")),
        Case("priority=p1", admin, TicketFilters(priority="p1")),
        Case("assignee (busiest)", admin, TicketFilters(assignee_id=found["assignee"])),
        Case("one-month window", admin, _month_before(found["newest"], 6)),
        Case("all filters, member", member, everything),
        Case(
            "none: project+assignee",
            admin,
            TicketFilters(project_id=biggest, assignee_id=found["outsider"]),
        ),
        Case(
            "none: unknown project", admin, TicketFilters(project_id=uuid.UUID(int=0))
        ),
    ]


def _pick(conn: Connection, org_id: uuid.UUID) -> dict[str, Any]:
    """Users, projects and dates of the organization that the cases use."""
    org = {"org": org_id}
    biggest = conn.scalar(
        text(
            "SELECT project_id FROM tickets WHERE org_id = :org"
            " GROUP BY project_id ORDER BY count(*) DESC LIMIT 1"
        ),
        org,
    )
    found = {"biggest": biggest}
    found["admin"] = conn.scalar(
        text(
            "SELECT id FROM users WHERE org_id = :org AND org_role = 'admin'"
            " ORDER BY email LIMIT 1"
        ),
        org,
    )
    # A plain member in about ten projects, the biggest one among them.
    found["member"] = conn.scalar(
        text(
            "SELECT u.id FROM users u JOIN project_members m ON m.user_id = u.id"
            " WHERE u.org_id = :org AND u.org_role = 'member'"
            " GROUP BY u.id, u.email ORDER BY abs(count(*) - 10),"
            " bool_or(m.project_id = :big) DESC, u.email LIMIT 1"
        ),
        {**org, "big": biggest},
    )
    busiest = (
        "SELECT assignee_id FROM tickets WHERE org_id = :org"
        " AND assignee_id IS NOT NULL {} GROUP BY assignee_id"
        " ORDER BY count(*) DESC LIMIT 1"
    )
    found["assignee"] = conn.scalar(text(busiest.format("")), org)
    # The busiest assignee who is no member of the biggest project: filtering
    # that project by that assignee matches nothing.
    outside = (
        "AND assignee_id NOT IN (SELECT user_id FROM project_members"
        " WHERE project_id = :big)"
    )
    found["outsider"] = conn.scalar(
        text(busiest.format(outside)), {**org, "big": biggest}
    )
    found["newest"] = conn.scalar(
        text("SELECT max(created_at) FROM tickets WHERE org_id = :org"), org
    )
    return found


def _month_before(newest: datetime, months: int) -> TicketFilters:
    """The calendar month ``months`` before the one holding ``newest``."""
    year, month = newest.year, newest.month - months
    while month < 1:
        year, month = year - 1, month + 12
    start = datetime(year, month, 1, tzinfo=UTC)
    end = (start + timedelta(days=32)).replace(day=1)
    return TicketFilters(created_after=start, created_before=end)


# --- recording and explaining -----------------------------------------------


@contextmanager
def recording(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Record the statements on ``tickets`` sent through ``engine`` in the block."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "FROM tickets" in statement:
            sent.append((statement, params))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def statements(
    engine: Engine, lister: Lister, case: Case, offset: int
) -> tuple[tuple[str, Any] | None, tuple[str, Any], int]:
    """The count and page statements ``lister`` sends for ``case``, and the total."""
    with recording(engine) as sent, Session(engine) as session:
        page = lister(
            session=session,
            principal=case.principal,
            filters=case.filters,
            limit=PAGE,
            offset=offset,
        )
    counts = [s for s in sent if s[0].lstrip().upper().startswith("SELECT COUNT")]
    pages = [s for s in sent if s not in counts]
    if len(counts) > 1 or len(pages) != 1:
        raise SystemExit(f"unexpected statements for {case.name}: {sent}")
    return (counts[0] if counts else None), pages[0], page.total


def explain(
    engine: Engine, sent: tuple[str, Any] | None, *, generic: bool
) -> Explained | None:
    """The best of ``RUNS`` EXPLAIN (ANALYZE, BUFFERS) runs, with its text plan."""
    if sent is None:
        return None
    statement, params = sent
    with engine.connect() as conn, _runner(conn, statement, generic=generic) as run:
        best: dict[str, Any] | None = None
        for _ in range(RUNS):
            options = "ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON"
            result = run(params, options)[0][0][0]
            if best is None or _ms(result) < _ms(best):
                best = result
        plan_text = "\n".join(line for (line,) in run(params, "ANALYZE, BUFFERS"))

    assert best is not None
    top = best["Plan"]
    return Explained(
        ms=_ms(best),
        rows=top["Actual Rows"],
        hit=top.get("Shared Hit Blocks", 0),
        read=top.get("Shared Read Blocks", 0),
        scans=", ".join(_scans(top)),
        text=plan_text,
    )


@contextmanager
def _runner(
    conn: Connection, statement: str, *, generic: bool
) -> Iterator[Callable[[Any, str], list[Any]]]:
    """A function running EXPLAIN with given options on ``statement``.

    By default the values are bound as the service's driver binds them, and
    PostgreSQL plans for those values. With ``generic``, the statement is
    prepared and planned once for any values: psycopg prepares a statement
    after five executions on a connection, and PostgreSQL may then switch to
    that generic plan.
    """
    if not generic:
        yield lambda params, options: list(
            conn.exec_driver_sql(f"EXPLAIN ({options}) {statement}", params).all()
        )
        conn.rollback()
        return

    names: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return f"${len(names)}"

    prepared = re.sub(r"%\((\w+)\)s", placeholder, statement)
    conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
    conn.exec_driver_sql(f"PREPARE bench_list AS {prepared}")
    driver = conn.connection.dbapi_connection

    def run(params: Any, options: str) -> list[Any]:
        # Literals: EXECUTE cannot type arguments bound as untyped strings.
        values = ", ".join(Literal(params[name]).as_string(driver) for name in names)
        sql = f"EXPLAIN ({options}) EXECUTE bench_list({values})"
        return list(conn.exec_driver_sql(sql.replace("%", "%%")).all())

    try:
        yield run
    finally:
        # A prepared statement outlives the transaction; SET LOCAL does not.
        conn.exec_driver_sql("DEALLOCATE bench_list")
        conn.rollback()


def _ms(result: dict[str, Any]) -> float:
    return float(result["Planning Time"] + result["Execution Time"])


def _scans(node: dict[str, Any]) -> Iterator[str]:
    """Each scan of a plan, outermost first, as 'kind index-or-table'."""
    kind = node["Node Type"]
    if kind.endswith("Scan") and kind != "Subquery Scan":
        short = kind
        for long, abbreviation in (
            ("Index Only Scan", "IOS"),
            ("Bitmap Index Scan", "BmpIdx"),
            ("Bitmap Heap Scan", "BmpHeap"),
            ("Index Scan", "Idx"),
            ("Seq Scan", "Seq"),
        ):
            short = short.replace(long, abbreviation)
        if node.get("Scan Direction") == "Backward":
            short += "<"
        if node.get("Parallel Aware"):
            short = "Par" + short
        yield f"{short} {node.get('Index Name') or node.get('Relation Name')}"
    for child in node.get("Plans", []):
        yield from _scans(child)


def run_cases(
    engine: Engine, cases: list[Case], lister: Lister, *, generic: bool
) -> tuple[list[Row], dict[str, int]]:
    """Explain page, deep page and count of every case as ``lister`` sends them."""
    rows, totals = [], {}
    for case in cases:
        count, page, totals[case.name] = statements(engine, lister, case, 0)
        _, deep, _ = statements(engine, lister, case, DEEP_OFFSET)
        first = explain(engine, page, generic=generic)
        later = explain(engine, deep, generic=generic)
        assert first is not None
        assert later is not None
        rows.append(Row(case, first, later, explain(engine, count, generic=generic)))
    return rows, totals


def index_sizes(engine: Engine) -> str:
    """The total size of the ``tickets`` indexes."""
    with engine.connect() as conn:
        size = conn.scalar(text("SELECT pg_size_pretty(pg_indexes_size('tickets'))"))
    return str(size)


# --- output -----------------------------------------------------------------


def print_table(title: str, rows: list[Row], totals: dict[str, int]) -> None:
    """One line per case with times and buffers, then the scans each plan chose."""
    print(f"\n== {title}")
    print(
        f"{'case':24} {'total':>9} {'page ms':>8} {'buf':>5} {'@10k ms':>8}"
        f" {'buf':>5} {'count ms':>8} {'buf':>5}"
    )
    for row in rows:
        count = _cell(row.count) if row.count else f"{'(none)':>14}"
        slow = "  SLOW" if _slow(row) else ""
        print(
            f"{row.case.name:24} {totals[row.case.name]:>9,}"
            f" {_cell(row.page)} {_cell(row.deep)} {count}{slow}"
        )
    print(f"\n{'case':24} scans of the page plan | of the count plan ('<' backward)")
    for row in rows:
        count_scans = row.count.scans if row.count else "-"
        print(f"{row.case.name:24} {row.page.scans} | {count_scans}")


def _cell(explained: Explained) -> str:
    buffers = explained.hit + explained.read
    shown = f"{buffers // 1000}k" if buffers >= 10_000 else str(buffers)
    return f"{explained.ms:>8.1f} {shown:>5}"


def _slow(row: Row) -> bool:
    slow_count = row.count is not None and row.count.ms > SLOW_COUNT_MS
    return max(row.page.ms, row.deep.ms) > SLOW_PAGE_MS or slow_count


def print_plans(rows: list[Row], *, every: bool) -> None:
    """The full plans of the slow statements (of all of them with ``every``)."""
    for row in rows:
        named = (("page", row.page), ("page @10k", row.deep), ("count", row.count))
        for label, explained in named:
            if explained is None:
                continue
            limit = SLOW_COUNT_MS if label == "count" else SLOW_PAGE_MS
            if every or explained.ms > limit:
                print(f"\n-- {row.case.name}, {label}: {explained.ms:.1f} ms")
                print("   " + _trimmed(explained.text).replace("\n", "\n   "))


def _trimmed(plan: str) -> str:
    """The plan without the long visibility filter lines, which never vary."""
    return "\n".join(
        line for line in plan.splitlines() if "purge_after IS NULL" not in line
    )


def main() -> None:
    """Explain every case as the service builds it."""
    args = parse_args()
    engine = build_engine(args.url)
    cases = build_cases(engine)

    rows, totals = run_cases(engine, cases, tickets.list_tickets, generic=args.generic)
    kind = "generic plans" if args.generic else "plans"
    print_table(
        f"the service as it is ({kind}; indexes {index_sizes(engine)})", rows, totals
    )
    print_plans(rows, every=args.plans)
    engine.dispose()


if __name__ == "__main__":
    main()
