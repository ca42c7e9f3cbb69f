"""The API under load at 10,000 and 1,000,000 tickets, against its references.

    .venv/bin/python bench/api_bench.py [--db palo_bench] [--port 8900]

Seeds two PostgreSQL databases (``<db>_10k`` and ``<db>_1m``, dropped and
created again unless ``--reuse``) with `bench/seed_tickets.py`: 1,000 projects
of very uneven size, statuses, priorities and assignees skewed as in a real
tenant, comments and history on a tenth of the tickets. It then serves each
with ``palo serve`` as production would, and the two references of
`bench/reference_app.py` with the same gunicorn worker class and count: the
job's floor (the filtered ticket list hand-written on psycopg) on each
database, and the ceiling (a constant 20-item list). Every server runs for
the whole run, and the runs are interleaved round by round, so that a noisy
machine slows every figure alike: compare them as ratios, not as absolutes.

wrk drives each scenario at a fixed concurrency; the table gives the median
over the rounds of requests per second, p50 and p99 latency, and the errors
(non-2xx answers and socket errors). It is printed and written to
``bench/results.md``, with each worker's resident memory after the run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from palo_api.config import Settings
from palo_api.runtime import Runtime
from palo_api.services import admin

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.md"
KEYS = "bench:" + "b" * 64
SIZES = {"10k": 10_000, "1M": 1_000_000}
DETAIL_TITLE = "Bench detail ticket"
CREATED_TITLE = "Bench created ticket"
PATCHED_TICKETS = 200


@dataclass(frozen=True)
class Scenario:
    """One kind of request: its name and the wrk script that sends it."""

    name: str
    script: str


@dataclass
class Figures:
    """What wrk measured in one run."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms: float = 0.0  # the server's CPU time per request, all workers


@dataclass
class Target:
    """A server and the scenarios it is driven with."""

    label: str
    port: int
    scenarios: dict[str, str]
    runs: dict[str, list[Figures]] = field(default_factory=dict)
    master: int = 0


def parse_args() -> argparse.Namespace:
    """The command line: database prefix, ports, duration, concurrency."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="palo_bench", help="database name prefix")
    parser.add_argument("--host", default="127.0.0.1", help="PostgreSQL host")
    parser.add_argument("--port", type=int, default=8900, help="first server port")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=8, help="per measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds before each")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="keep seeded databases")
    parser.add_argument("--only", help="scenario names separated by ';'")
    parser.add_argument("--title", default="", help="a line above the table")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


# --- data -------------------------------------------------------------------


def database_url(args: argparse.Namespace, size: str) -> str:
    """The libpq URL of the database for ``size``."""
    return f"postgresql://postgres@{args.host}:5432/{args.db}_{size.lower()}"


def seed(args: argparse.Namespace, size: str) -> None:
    """Create and seed the database of ``size`` (unless reused and seeded)."""
    name = f"{args.db}_{size.lower()}"
    if args.reuse and _seeded(database_url(args, size)):
        print(f"reusing {name}", file=sys.stderr)
        return
    pg = ["-h", args.host, "-U", "postgres"]
    subprocess.run(["dropdb", *pg, "--if-exists", name], check=True)  # noqa: S603, S607
    subprocess.run(["createdb", *pg, name], check=True)  # noqa: S603, S607
    tickets = SIZES[size]
    others = ["--small-orgs", "0"] if tickets < 100_000 else []
    command = [
        sys.executable, str(ROOT / "bench" / "seed_tickets.py"),
        "--url", database_url(args, size), "--tickets", str(tickets),
        "--projects", "1000", "--activity-share", "0.1", *others,
    ]  # fmt: skip
    subprocess.run(command, check=True, stdout=sys.stderr)  # noqa: S603


def _seeded(url: str) -> bool:
    try:
        with psycopg.connect(url) as conn:
            return bool(conn.execute("SELECT count(*) FROM tickets").fetchone())
    except psycopg.Error:
        return False


@dataclass(frozen=True)
class Fixture:
    """The caller and the rows the scenarios ask for, in one database."""

    user_id: uuid.UUID
    client_id: str
    token: str
    project_id: uuid.UUID
    writable_project_id: uuid.UUID
    assignee_id: uuid.UUID
    detail_id: uuid.UUID
    patched_ids: list[uuid.UUID]
    range_start: str
    range_end: str


def prepare(url: str) -> Fixture:
    """An org admin's client and token in the big organization, and the rows.

    The big organization is on the Enterprise plan: its requests are not
    counted, so the daily quota plays no part (`bench/quota_cost.py` measures
    what counting costs).
    """
    settings = Settings.from_env({"PALO_DATABASE_URL": url, "PALO_SIGNING_KEYS": KEYS})
    runtime = Runtime.from_settings(settings)
    with psycopg.connect(url, autocommit=True) as conn:
        _forget_earlier_runs(conn)
        org_id, user_id = _one(
            conn,
            "SELECT o.id, u.id FROM organizations o JOIN users u ON u.org_id = o.id"
            " WHERE o.plan = 'enterprise' AND u.org_role = 'admin'"
            " ORDER BY u.email LIMIT 1",
        )
        # The biggest active project: the heaviest filtered list.
        (project_id,) = _one(
            conn,
            "SELECT t.project_id FROM tickets t JOIN projects p ON p.id = t.project_id"
            " WHERE p.status = 'active' AND p.org_id = %s"
            " GROUP BY t.project_id ORDER BY count(*) DESC LIMIT 1",
            (org_id,),
        )
        writable_id, assignee_id = _one(
            conn,
            "SELECT m.project_id, m.user_id FROM project_members m"
            " JOIN projects p ON p.id = m.project_id"
            " WHERE p.status = 'active' AND p.org_id = %s AND m.role = 'member'"
            " ORDER BY p.created_at, m.user_id LIMIT 1",
            (org_id,),
        )
        detail_id = _detail_ticket(conn, project_id, user_id)
        patched = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM tickets WHERE project_id = %s AND id <> %s"
                " ORDER BY created_at DESC LIMIT %s",
                (project_id, detail_id, PATCHED_TICKETS),
            )
        ]
        # The last 30 days of the organization: what a pipeline syncing a
        # month back reads, page by page.
        (newest,) = _one(
            conn, "SELECT max(created_at) FROM tickets WHERE org_id = %s", (org_id,)
        )

    with runtime.database.write() as session:
        client = admin.create_client(
            session=session, hasher=runtime.hasher, user_id=user_id, name="bench"
        ).client
        client_id = client.client_id
        session.commit()
    token = runtime.tokens.issue(
        user_id=user_id, org_id=org_id, client_id=client_id
    ).access_token
    runtime.database.dispose()
    return Fixture(
        user_id=user_id,
        client_id=client_id,
        token=token,
        project_id=project_id,
        writable_project_id=writable_id,
        assignee_id=assignee_id,
        detail_id=detail_id,
        patched_ids=patched,
        range_start=_z(newest - timedelta(days=30)),
        range_end=_z(newest + timedelta(seconds=1)),
    )


def _forget_earlier_runs(conn: psycopg.Connection[Any]) -> None:
    """Drop what an earlier run on a reused database added."""
    conn.execute("DELETE FROM tickets WHERE title = %s", (CREATED_TITLE,))
    conn.execute("DELETE FROM outbox_events")
    conn.execute("DELETE FROM api_clients WHERE name = 'bench'")


def _detail_ticket(
    conn: psycopg.Connection[Any], project_id: uuid.UUID, user_id: uuid.UUID
) -> uuid.UUID:
    """A ticket with 20 comments and 50 history events, made once."""
    found = conn.execute(
        "SELECT id FROM tickets WHERE title = %s", (DETAIL_TITLE,)
    ).fetchone()
    if found:
        return uuid.UUID(str(found[0]))
    ticket_id = uuid.uuid4()
    with conn.transaction():
        conn.execute(
            "INSERT INTO tickets (id, org_id, project_id, title, description, status,"
            " priority, reporter_id, created_at, updated_at)"
            " SELECT %s, org_id, id, %s, 'Opened by the benchmark.', 'open', 'p2',"
            " %s, now() - interval '40 days', now() - interval '1 day'"
            " FROM projects WHERE id = %s",
            (ticket_id, DETAIL_TITLE, user_id, project_id),
        )
        events = ["ticket.created"] + ["comment.created"] * 20
        events += ["ticket.updated"] * (50 - len(events))
        for n, action in enumerate(events):
            comment_id = None
            if action == "comment.created":
                comment_id = uuid.uuid4()
                body = f"Comment {n}: the **export** fails again on @{user_id}."
                conn.execute(
                    "INSERT INTO comments (id, ticket_id, author_id, body, body_html,"
                    " mentions, created_at) VALUES (%s, %s, %s, %s, %s, %s,"
                    " now() - interval '39 days' + %s * interval '1 hour')",
                    (comment_id, ticket_id, user_id, body, f"<p>{body}</p>\n",
                     json.dumps([str(user_id)]), n),
                )  # fmt: skip
            changes = (
                [{"field": "priority", "from": "p3", "to": "p2"}]
                if action == "ticket.updated"
                else []
            )
            conn.execute(
                "INSERT INTO audit_events (id, org_id, ticket_id, actor_id, action,"
                " comment_id, changes, request_id, created_at)"
                " SELECT %s, org_id, id, %s, %s, %s, %s, %s,"
                " now() - interval '39 days' + %s * interval '1 hour'"
                " FROM tickets WHERE id = %s",
                (uuid.uuid4(), user_id, action, comment_id, json.dumps(changes),
                 uuid.uuid4(), n, ticket_id),
            )  # fmt: skip
    return ticket_id


def _one(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> Any:
    row = conn.execute(sql, params).fetchone()
    if row is None:
        raise SystemExit(f"the seeded database has no row for: {sql}")
    return row


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- wrk scripts ------------------------------------------------------------


def scripts(fixture: Fixture, nonce: str) -> dict[str, str]:
    """The wrk Lua script of each scenario, by scenario name."""
    auth = f'wrk.headers["Authorization"] = "Bearer {fixture.token}"\n'
    json_type = 'wrk.headers["Content-Type"] = "application/json"\n'
    listed = f"/v1/tickets?project_id={fixture.project_id}&status=open&limit=20"
    ranged = (
        f"/v1/tickets?created_after={fixture.range_start}"
        f"&created_before={fixture.range_end}&limit=100"
    )
    created = json.dumps(
        {
            "project_id": str(fixture.writable_project_id),
            "title": CREATED_TITLE,
            "description": "Created under load by the benchmark.",
            "priority": "p2",
            "assignee_id": str(fixture.assignee_id),
        }
    )
    ids = ", ".join(f'"{ticket_id}"' for ticket_id in fixture.patched_ids)
    # Every PATCH changes the title, so every one writes its history and
    # outbox rows; the nonce keeps a later run from repeating a title.
    patch = (
        f"local ids = {{{ids}}}\nlocal n = 0\n"
        "request = function()\n  n = n + 1\n"
        "  local id = ids[(n % #ids) + 1]\n"
        f"  local body = '{{\"title\": \"Bench patch {nonce} ' .. n .. '\"}}'\n"
        '  return wrk.format("PATCH", "/v1/tickets/" .. id, nil, body)\nend\n'
    )
    return {
        "list: project+status, 20": auth + _get(listed),
        "list: 30 days, 100": auth + _get(ranged),
        "get: 20 comments, 50 events": auth + _get(f"/v1/tickets/{fixture.detail_id}"),
        "create ticket": auth + json_type + _post("/v1/tickets", created),
        "patch ticket": auth + json_type + patch,
        "list projects": auth + _get("/v1/projects"),
    }


def _get(path: str) -> str:
    return f'wrk.method = "GET"\nwrk.path = "{path}"\n'


def _post(path: str, body: str) -> str:
    return f'wrk.method = "POST"\nwrk.path = "{path}"\nwrk.body = {_lua(body)}\n'


def _lua(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# --- servers ----------------------------------------------------------------


@contextmanager
def serving(
    command: list[str], env: dict[str, str], port: int, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server until the block ends; wait until it answers /healthz."""
    with log.open("wb") as out:
        server = subprocess.Popen(  # noqa: S603
            command, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=out
        )
        try:
            _wait_until_up(server, port, log)
            yield server
        finally:
            server.terminate()
            server.wait(timeout=30)


def _wait_until_up(server: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"a server on port {port} exited; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers (the references have no /healthz)
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"a server on port {port} did not start; see {log}")


def palo_command(port: int, workers: int) -> list[str]:
    """``palo serve`` as production runs it."""
    return [
        str(Path(sys.executable).parent / "palo"), "serve",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip


def reference_command(target: str, port: int, workers: int) -> list[str]:
    """A reference app under gunicorn with the worker class ``palo serve`` uses."""
    return [
        sys.executable, "-m", "gunicorn", f"bench.reference_app:{target}",
        "--worker-class", "palo_api.serving.UvicornWorker",
        "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
        "--log-level", "warning", "--no-control-socket",
    ]  # fmt: skip


def _workers(master: int) -> Iterator[tuple[Path, list[str]]]:
    """The /proc directory and stat fields of each child of ``master``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # Fields after the command name, which may hold spaces.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == master:
            yield stat.parent, fields


def worker_rss_mb(master: int) -> list[float]:
    """Resident memory of each worker (child) of a gunicorn master, in MB."""
    sizes = []
    for directory, _ in _workers(master):
        try:
            status = (directory / "status").read_text()
        except OSError:
            continue
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        if match:
            sizes.append(int(match.group(1)) / 1024)
    return sorted(sizes)


def workers_cpu_seconds(master: int) -> float:
    """User and system CPU time of all the workers of a gunicorn master."""
    ticks = sum(int(fields[11]) + int(fields[12]) for _, fields in _workers(master))
    return ticks / os.sysconf("SC_CLK_TCK")


# --- load -------------------------------------------------------------------


def drive(port: int, script: Path, seconds: int, connections: int) -> Figures:
    """One wrk run; the figures it printed."""
    output = subprocess.run(  # noqa: S603
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",  # noqa: S607
         "-s", str(script), f"http://127.0.0.1:{port}"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    done = re.search(r"(\d+) requests in", output)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", output)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    if not (rps and p50 and p99 and done):
        raise SystemExit(f"wrk printed no figures:\n{output}")
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    socket = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket:
        errors += sum(int(n) for n in socket.groups())
    figures = Figures(float(rps.group(1)), _ms(p50), _ms(p99), errors)
    figures.cpu_ms = int(done.group(1))  # turned into ms per request by _run
    return figures


def _ms(match: re.Match[str]) -> float:
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
    return float(match.group(1)) * scale


def check_once(port: int, script: str, token_free: bool = False) -> None:
    """Send a scenario's request once, so a mistake fails before the load."""
    method = re.search(r'wrk.method = "(\w+)"', script)
    path = re.search(r'wrk.path = "([^"]+)"', script)
    if not (method and path):
        return  # the PATCH script builds its requests itself
    token = re.search(r"Bearer ([^\"]+)", script)
    body = re.search(r"wrk.body = '(.*)'", script)
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path.group(1)}",
        method=method.group(1),
        data=body.group(1).encode() if body else None,
        headers={"Content-Type": "application/json"},
    )
    if token and not token_free:
        request.add_header("Authorization", f"Bearer {token.group(1)}")
    with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310
        if reply.status >= 300:
            raise SystemExit(f"{path.group(1)} answered {reply.status}")


# --- output -----------------------------------------------------------------


def median(runs: list[Figures]) -> Figures:
    """The median of each figure over the rounds (errors: the sum)."""
    return Figures(
        statistics.median(r.rps for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        sum(r.errors for r in runs),
        statistics.median(r.cpu_ms for r in runs),
    )


def table(
    targets: dict[str, Target], memory: dict[str, list[float]], args: argparse.Namespace
) -> str:
    """The results as Markdown."""
    lines = [
        f"{args.title}\n" if args.title else "",
        f"wrk, {args.connections} connections, {args.rounds} rounds of"
        f" {args.seconds} s (medians), gunicorn with {args.workers} uvicorn workers"
        f" per server, PostgreSQL, {os.cpu_count()} cores. cpu: the server's"
        " CPU time per request (its workers, not PostgreSQL's).\n",
        "| scenario | req/s 10k | p50 ms | p99 ms | err | cpu ms | req/s 1M"
        " | p50 ms | p99 ms | err | cpu ms | 1M / 10k |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    small, big = targets["palo 10k"], targets["palo 1M"]
    rows = [(name, small.runs[name], big.runs[name]) for name in big.runs]
    listed = "list: project+status, 20"
    floor_small, floor_big = targets["floor 10k"], targets["floor 1M"]
    rows.append(
        (f"floor: {listed} (Starlette, psycopg)", *_floor_runs(floor_small, floor_big))
    )
    for name, at_10k, at_1m in rows:
        a, b = median(at_10k), median(at_1m)
        lines.append(f"| {name} | {_cells(a)} | {_cells(b)} | {b.rps / a.rps:.2f} |")
    c = median(next(iter(targets["ceiling"].runs.values())))
    lines.append(
        f"| ceiling: constant 20 items (Starlette) | {_cells(c)} | | | | | | |"
    )
    lines.append("")
    if listed in big.runs:
        mine, floor = median(big.runs[listed]), median(rows[-1][2])
        lines.append(
            f"- filtered list at 1M: {mine.rps / floor.rps:.0%} of the floor's"
            f" req/s (target: at least 50 %); CPU per request"
            f" {mine.cpu_ms / floor.cpu_ms:.1f} times the floor's."
        )
    lines.append(
        "- resident memory per worker after the run (MB): "
        + "; ".join(
            f"{label} {', '.join(f'{mb:.0f}' for mb in sizes)}"
            for label, sizes in memory.items()
        )
    )
    return "\n".join(lines) + "\n"


def _floor_runs(small: Target, big: Target) -> tuple[list[Figures], list[Figures]]:
    return next(iter(small.runs.values())), next(iter(big.runs.values()))


def _cells(figures: Figures) -> str:
    return (
        f"{figures.rps:,.0f} | {figures.p50_ms:.1f} | {figures.p99_ms:.1f}"
        f" | {figures.errors} | {figures.cpu_ms:.2f}"
    )


def main() -> None:
    """Seed, serve, drive every scenario round by round, print the table."""
    args = parse_args()
    if not shutil.which("wrk"):
        raise SystemExit(
            "make bench needs wrk, the HTTP load generator: apt-get install -y wrk"
        )
    for size in SIZES:
        seed(args, size)
    fixtures = {size: prepare(database_url(args, size)) for size in SIZES}
    nonce = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix="palo-bench-"))
    only = set(args.only.split(";")) if args.only else None

    targets: dict[str, Target] = {}
    port = args.port
    for size, fixture in fixtures.items():
        chosen = {
            name: script
            for name, script in scripts(fixture, nonce).items()
            if only is None or name in only
        }
        targets[f"palo {size}"] = Target(f"palo {size}", port, chosen)
        floor_script = chosen.get("list: project+status, 20") or next(
            iter(scripts(fixture, nonce).values())
        )
        targets[f"floor {size}"] = Target(
            f"floor {size}", port + 1, {"list: project+status, 20": floor_script}
        )
        port += 2
    ceiling_path = '"/v1/tickets"'
    targets["ceiling"] = Target(
        "ceiling", port, {"constant": f"wrk.path = {ceiling_path}\n"}
    )

    memory: dict[str, list[float]] = {}
    with ExitStack() as stack:
        masters = {}
        for size, fixture in fixtures.items():
            url = database_url(args, size)
            env = {
                "PALO_DATABASE_URL": url,
                "PALO_SIGNING_KEYS": KEYS,
                "PALO_ENV": "production",
                "PALO_METRICS_DIR": str(workdir / f"metrics-{size}"),
            }
            palo = targets[f"palo {size}"]
            masters[palo.label] = stack.enter_context(
                serving(
                    palo_command(palo.port, args.workers),
                    env,
                    palo.port,
                    workdir / f"palo-{size}.log",
                )
            ).pid
            floor = targets[f"floor {size}"]
            reference_env = {
                "BENCH_DATABASE_URL": url,
                "BENCH_USER_ID": str(fixture.user_id),
                "BENCH_CLIENT_ID": fixture.client_id,
            }
            masters[floor.label] = stack.enter_context(
                serving(
                    reference_command("floor_app", floor.port, args.workers),
                    reference_env,
                    floor.port,
                    workdir / f"floor-{size}.log",
                )
            ).pid
        ceiling = targets["ceiling"]
        masters[ceiling.label] = stack.enter_context(
            serving(
                reference_command("ceiling_app", ceiling.port, args.workers),
                {},
                ceiling.port,
                workdir / "ceiling.log",
            )
        ).pid

        for label, pid in masters.items():
            targets[label].master = pid
        for target in targets.values():
            for script in target.scenarios.values():
                check_once(target.port, script, token_free=target.label == "ceiling")
        for round_ in range(1, args.rounds + 1):
            for name in next(iter(targets.values())).scenarios:
                for target in targets.values():
                    if name in target.scenarios:
                        _run(
                            target, name, target.scenarios[name], workdir, args, round_
                        )
            for target in targets.values():
                if target.label.startswith(("floor", "ceiling")):
                    for name, script in target.scenarios.items():
                        if name not in targets["palo 1M"].scenarios:
                            _run(target, name, script, workdir, args, round_)
        memory = {label: worker_rss_mb(pid) for label, pid in masters.items()}

    result = table(targets, memory, args)
    print(result)
    args.out.write_text(result)
    print(f"written to {args.out}; server logs in {workdir}", file=sys.stderr)


def _run(
    target: Target,
    name: str,
    script: str,
    workdir: Path,
    args: argparse.Namespace,
    round_: int,
) -> None:
    path = workdir / f"{target.port}-{abs(hash(name))}.lua"
    path.write_text(script)
    if args.warmup:
        drive(target.port, path, args.warmup, args.connections)
    cpu = workers_cpu_seconds(target.master)
    figures = drive(target.port, path, args.seconds, args.connections)
    spent = workers_cpu_seconds(target.master) - cpu
    figures.cpu_ms = spent * 1000 / max(figures.cpu_ms, 1)
    target.runs.setdefault(name, []).append(figures)
    print(
        f"round {round_} {target.label:10} {name:30} {figures.rps:8.0f} req/s"
        f" p50 {figures.p50_ms:6.1f} p99 {figures.p99_ms:6.1f} err {figures.errors}"
        f" cpu {figures.cpu_ms:5.2f} ms/req",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
