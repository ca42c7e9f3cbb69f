"""The ``palo`` command: serve, migrate, and administer organizations and clients.

Admin commands print one JSON object on stdout; logs and errors go to stderr.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import signal
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import prometheus_client
from rfc3339_validator import validate_rfc3339
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from palo_api.config import ConfigError, Settings, configured_database_url
from palo_api.db import migrate
from palo_api.db.engine import Database, normalise_url
from palo_api.db.models import ORG_ROLES, PLANS
from palo_api.db.types import rfc3339, utcnow
from palo_api.errors import ApiError
from palo_api.logs import configure_logging
from palo_api.runtime import Runtime
from palo_api.schemas import client_out, organization_out, user_out
from palo_api.services import admin, retention
from palo_api.worker import Worker, WorkerOptions

logger = logging.getLogger(__name__)
# The files prometheus-client's multiprocess mode writes, one per kind and pid.
METRIC_FILE = re.compile(r"(?:counter|histogram|summary|gauge_[a-z]+)_([0-9]+)\.db")


def main() -> None:
    """Entry point of the ``palo`` console script."""
    cli(prog_name="palo")


@click.group()
def cli() -> None:
    """PALO API server and administration."""


@contextmanager
def _runtime() -> Iterator[Runtime]:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    configure_logging(settings)
    runtime = Runtime.from_settings(settings)
    try:
        yield runtime
    finally:
        runtime.database.dispose()


@contextmanager
def _migrated_runtime() -> Iterator[Runtime]:
    """A runtime whose database is reachable and at the newest migration."""
    _refuse_missing_sqlite_file()
    with _runtime() as runtime:
        url = runtime.settings.database_url
        shown = make_url(normalise_url(url)).render_as_string(hide_password=True)
        try:
            current = migrate.is_current(runtime.database.engine, url)
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise click.ClickException(
                f"Cannot reach the database {shown}: {reason}"
            ) from exc
        if not current:
            raise click.ClickException(
                f"The database {shown} is not at the newest migration; "
                "run `palo db upgrade` first (PALO_DATABASE_URL chooses the database)."
            )
        yield runtime


def _refuse_missing_sqlite_file() -> None:
    # Checked before the settings are read: they would generate a signing key
    # and connecting would create an empty file, in whatever directory the
    # command was mistakenly run from.
    try:
        url = make_url(normalise_url(configured_database_url()))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    path = url.database
    on_disk = url.get_backend_name() == "sqlite" and path and path != ":memory:"
    if on_disk and not Path(str(path)).exists():
        raise click.ClickException(
            f"There is no database at {path}; run `palo db upgrade` to create "
            "it, or run this command from the directory that holds var/ "
            "(PALO_DATABASE_URL chooses the database)."
        )


def _emit(payload: dict[str, Any]) -> None:
    click.echo(json.dumps(payload, default=str))


def _run(action: Callable[[Runtime, Session], dict[str, Any]]) -> None:
    """Run one admin action in a write session and print its JSON result."""
    with _migrated_runtime() as runtime, runtime.database.write() as session:
        try:
            result = action(runtime, session)
        except ApiError as exc:
            details = "; ".join(
                f"{d['field']} {d['message']}" for d in exc.details or []
            )
            raise click.ClickException(details or exc.message) from exc
    _emit(result)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
def serve(host: str, port: int, workers: int) -> None:
    """Serve the API with gunicorn and uvicorn workers."""
    try:
        settings = Settings.from_env()
        settings.refuse_development_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    configure_logging(settings)
    _refuse_unmigrated_database(settings)
    _prepare_metrics_dir(settings, port)
    if settings.uses_local_key_file and not settings.database_url.startswith("sqlite"):
        logger.warning(
            "signing tokens with the key generated in %s; set PALO_SIGNING_KEYS "
            "to one shared key when several hosts serve this database",
            settings.signing_key_file,
        )
    args = [
        sys.executable, "-m", "gunicorn", "palo_api.asgi:app",
        "--worker-class", "palo_api.serving.UvicornWorker",
        "--bind", f"{host}:{port}",
        "--workers", str(workers),
        # Logging through palo's handlers; metric files of dead workers
        # marked as such.
        "--config", "python:palo_api.gunicorn_conf",
        # On SIGTERM, requests in flight get this long to finish.
        "--graceful-timeout", "20",
        # Only these peers may say, in X-Forwarded-For, whom they forward
        # for; the login throttle counts per source address.
        "--forwarded-allow-ips", settings.trusted_proxies,
        # gunicorn's control socket has one fixed path per machine user, so
        # two servers on one host would take it from each other.
        "--no-control-socket",
    ]  # fmt: skip
    os.execvp(sys.executable, args)  # noqa: S606 - replaces this process by design


def _refuse_unmigrated_database(settings: Settings) -> None:
    """Stop before serving a database that lacks this release's migrations.

    Every request would fail on a missing table. A database that does not
    answer yet is no reason to stop: requests answer 503 until it does.
    """
    _refuse_missing_sqlite_file()
    database = Database(settings.database_url)
    try:
        with database.engine.connect() as connection:
            state = migrate.schema_state(connection)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        logger.warning("the database does not answer yet (%s); serving anyway", reason)
        return
    finally:
        database.dispose()
    if state == "behind":
        raise click.ClickException(
            "The database lacks migrations this release needs; run "
            "`palo db upgrade` first (PALO_DATABASE_URL chooses the database)."
        )


def _prepare_metrics_dir(settings: Settings, port: int) -> None:
    """Give gunicorn's workers a directory to share their metrics in.

    Files left by processes that are gone would add an earlier run's counts
    to this one's, so they go; files of live processes stay, in case another
    server still writes here (a second start on a port in use fails only
    after this runs).
    """
    directory = settings.metrics_dir or Path(
        tempfile.gettempdir(), f"palo-metrics-{port}"
    )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.iterdir():
            # Only prometheus-client's own files: the directory may be shared.
            match = METRIC_FILE.fullmatch(stale.name)
            if match and not _process_alive(int(match.group(1))):
                stale.unlink()
    except OSError as exc:
        raise click.ClickException(
            f"PALO_METRICS_DIR {directory} cannot be used: {exc.strerror}"
        ) from exc
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except (OverflowError, OSError):
        return False
    return True


@cli.group()
def db() -> None:
    """Database schema."""


@db.command()
def upgrade() -> None:
    """Apply every pending migration."""
    with _runtime() as runtime:
        # Name each migration as it runs.
        logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)
        migrate.upgrade(runtime.settings.database_url)
    click.echo("database is up to date", err=True)


def _rfc3339(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> datetime | None:
    """Parse an RFC 3339 date-time with a timezone; naive times are refused."""
    if value is None:
        return None
    text = value.upper()
    try:
        if not validate_rfc3339(text):
            raise ValueError(text)
        # Valid RFC 3339 can still fail here: a leap second, say.
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is not an RFC 3339 date-time with a timezone, "
            "e.g. 2027-01-31T00:00:00Z"
        ) from exc
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        raise click.BadParameter(
            f"{value!r} falls outside the years 1 to 9999 in UTC"
        ) from exc


def _finite(param: click.Parameter, value: float) -> float:
    # FloatRange lets NaN through (every comparison with it is false), and a
    # NaN deadline would never pass.
    if math.isnan(value):
        raise click.BadParameter("must be a number", param=param)
    return value


@cli.command("purge")
@click.option(
    "--as-of",
    metavar="RFC3339",
    callback=_rfc3339,
    default=None,
    help="Purge what is due by this time (default: now); may be in the future.",
)
@click.option(
    "--batch-size",
    default=retention.DEFAULT_BATCH_SIZE,
    show_default=True,
    type=click.IntRange(1, retention.MAX_BATCH_SIZE),
    help="Tickets deleted per transaction.",
)
@click.option(
    "--wait",
    "wait_seconds",
    default=retention.DEFAULT_WAIT_SECONDS,
    show_default=True,
    type=click.FloatRange(0, 3600),
    callback=lambda _ctx, param, value: _finite(param, value),
    help="Seconds to wait, without progress, for due projects others hold locked.",
)
def purge_command(as_of: datetime | None, batch_size: int, wait_seconds: float) -> None:
    """Delete for good the archived projects past their purge date."""
    as_of = as_of or utcnow()
    with _migrated_runtime() as runtime:
        counts = retention.purge(
            database=runtime.database,
            as_of=as_of,
            batch_size=batch_size,
            wait_seconds=wait_seconds,
        )
    _emit({"as_of": rfc3339(as_of), **counts.as_dict(), "still_due": counts.still_due})
    if counts.still_due:
        raise click.ClickException(
            f"{counts.still_due} due project(s) stayed locked by other "
            f"transactions for {wait_seconds:g} s; run `palo purge` again."
        )


@cli.command("worker")
@click.option(
    "--concurrency",
    default=8,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Deliveries attempted at once.",
)
@click.option(
    "--poll-interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.05, 60),
    callback=lambda _ctx, param, value: _finite(param, value),
    help="Seconds between looks for work when there is none.",
)
@click.option(
    "--lease-seconds",
    default=60,
    show_default=True,
    type=click.IntRange(15, 3600),
    help="How long a claimed delivery stays ours; a worker that dies "
    "mid-attempt has it retried after this.",
)
@click.option(
    "--housekeeping-interval",
    default=3600.0,
    show_default=True,
    type=click.FloatRange(1, 7 * 86400),
    callback=lambda _ctx, param, value: _finite(param, value),
    help="Seconds between retention purges and clean-ups of old delivery logs.",
)
@click.option(
    "--first-retry",
    "first_retry_seconds",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.1, 3600),
    callback=lambda _ctx, param, value: _finite(param, value),
    help="Seconds before the first retry; each later one waits about twice "
    "as long, up to 12 h, for three days.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve this worker's Prometheus metrics at /metrics on this port.",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="The address --metrics-port listens on.",
)
def worker_command(
    concurrency: int,
    poll_interval: float,
    lease_seconds: int,
    housekeeping_interval: float,
    first_retry_seconds: float,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Deliver webhook events until SIGTERM; purge expired projects periodically."""
    options = WorkerOptions(
        concurrency=concurrency,
        poll_seconds=poll_interval,
        lease=timedelta(seconds=lease_seconds),
        housekeeping_seconds=housekeeping_interval,
        first_retry=timedelta(seconds=first_retry_seconds),
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        logger.info(
            "%s received: finishing the attempts in flight", signal.Signals(signum).name
        )
        stop.set()

    with _migrated_runtime() as runtime:
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        if metrics_port is not None:
            _serve_worker_metrics(metrics_host, metrics_port)
        logger.info("worker started (concurrency %d)", concurrency)
        Worker(runtime, options).run(stop)
    logger.info("worker stopped")


def _serve_worker_metrics(host: str, port: int) -> None:
    try:
        prometheus_client.start_http_server(port, addr=host)
    except OSError as exc:
        raise click.ClickException(
            f"--metrics-port {port} on {host} cannot be used: {exc.strerror}"
        ) from exc
    logger.info("worker metrics at http://%s:%d/metrics", host, port)


class _Text(click.ParamType[str]):
    """Text a database can store: valid UTF-8 from the shell, no NUL."""

    name = "text"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        text = str(value)
        try:
            # Bytes that are not UTF-8 reach Python as lone surrogates.
            text.encode("utf-8")
        except UnicodeEncodeError:
            self.fail("is not valid UTF-8 text", param, ctx)
        if "\x00" in text:
            self.fail("must not contain NUL characters", param, ctx)
        return text


TEXT = _Text()


@cli.group(name="admin")
def admin_group() -> None:
    """Organizations, users and API clients."""


@admin_group.command("create-org")
@click.option("--name", required=True, type=TEXT)
@click.option("--plan", required=True, type=click.Choice(PLANS))
def create_org(name: str, plan: str) -> None:
    """Create an organization."""
    _run(
        lambda _rt, s: organization_out.dump(
            admin.create_org(session=s, name=name, plan=plan)
        )
    )


@admin_group.command("set-plan")
@click.option("--org", "org_id", required=True, type=click.UUID)
@click.option("--plan", required=True, type=click.Choice(PLANS))
def set_plan(org_id: uuid.UUID, plan: str) -> None:
    """Move an organization to another plan."""
    _run(
        lambda _rt, s: organization_out.dump(
            admin.set_plan(session=s, org_id=org_id, plan=plan)
        )
    )


@admin_group.command("create-user")
@click.option("--org", "org_id", required=True, type=click.UUID)
@click.option("--email", required=True, type=TEXT)
@click.option("--name", required=True, type=TEXT)
@click.option(
    "--org-role", default="member", show_default=True, type=click.Choice(ORG_ROLES)
)
def create_user(org_id: uuid.UUID, email: str, name: str, org_role: str) -> None:
    """Create a user in an organization."""
    _run(
        lambda _rt, s: user_out.dump(
            admin.create_user(
                session=s, org_id=org_id, email=email, name=name, org_role=org_role
            )
        )
    )


@admin_group.command("create-client")
@click.option("--user", "user_id", required=True, type=click.UUID)
@click.option("--name", default=None, type=TEXT)
def create_client(user_id: uuid.UUID, name: str | None) -> None:
    """Create API credentials; the secret is printed only here."""

    def action(runtime: Runtime, session: Session) -> dict[str, Any]:
        created = admin.create_client(
            session=session, hasher=runtime.hasher, user_id=user_id, name=name
        )
        return {
            "client_id": created.client.client_id,
            "client_secret": created.secret,
            "user_id": str(created.client.user_id),
            "org_id": str(created.client.user.org_id),
        }

    _run(action)


@admin_group.command("disable-client")
@click.option("--client", "client_id", required=True, type=TEXT)
def disable_client(client_id: str) -> None:
    """Disable a client; its tokens stop working at once."""
    _run(
        lambda _rt, s: client_out.dump(
            admin.disable_client(session=s, client_id=client_id)
        )
    )


@admin_group.command("demo")
@click.option(
    "--credentials-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("var/demo-credentials.json"),
    show_default=True,
)
def demo(credentials_file: Path) -> None:
    """Create a demo organization, admin user and client once; print them."""
    if credentials_file.exists():
        saved = json.loads(credentials_file.read_text())
        with _migrated_runtime() as runtime, runtime.database.read() as session:
            still_there = admin.client_exists(
                session=session, client_id=saved.get("client_id", "")
            )
        if still_there:
            _emit(saved)
            return

    def action(runtime: Runtime, session: Session) -> dict[str, Any]:
        org = admin.create_org(session=session, name="Demo", plan="enterprise")
        user = admin.create_user(
            session=session,
            org_id=org.id,
            email=f"demo-{uuid.uuid4().hex[:8]}@example.com",
            name="Demo Admin",
            org_role="admin",
        )
        created = admin.create_client(
            session=session, hasher=runtime.hasher, user_id=user.id, name="demo"
        )
        return {
            "org_id": str(org.id),
            "user_id": str(user.id),
            "client_id": created.client.client_id,
            "client_secret": created.secret,
        }

    with _migrated_runtime() as runtime, runtime.database.write() as session:
        result = action(runtime, session)
    credentials_file.parent.mkdir(parents=True, exist_ok=True)
    credentials_file.touch(mode=0o600)
    credentials_file.write_text(json.dumps(result, indent=2))
    _emit(result)
