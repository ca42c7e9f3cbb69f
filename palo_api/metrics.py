"""Prometheus metrics of the API (the webhook worker has its own, in worker.py).

Under gunicorn every worker process writes its samples to files in
``PROMETHEUS_MULTIPROC_DIR`` (``palo serve`` sets it), and a scrape of any
worker adds them all up. Without that variable (tests, one process) the
samples live in memory. The webhook backlog is read from the database at
scrape time, so it is the same whichever host answers and it keeps being
reported when no worker runs, which is when it matters.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from palo_api.db.engine import Database
from palo_api.services import monitoring

__all__ = ["CONTENT_TYPE_LATEST", "exposition"]

# Up to ten seconds, the longest a request may legitimately take (a comment
# rendering hostile Markdown, a writer queueing for SQLite).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "palo_http_requests",
    "Requests answered, by method, documented route and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "palo_http_request_duration_seconds",
    "Time from the request's arrival to the end of its answer.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
QUOTA_REJECTIONS = Counter(
    "palo_quota_rejections",
    "Requests refused with 429 because the organization's plan allows no more.",
    ["plan", "reason"],
)
TOKENS_ISSUED = Counter(
    "palo_tokens_issued",
    "Access tokens issued, by grant (client_credentials or refresh).",
    ["grant"],
)
TOKEN_FAILURES = Counter(
    "palo_token_failures",
    "Refused token requests and bearer tokens, by reason.",
    ["reason"],
)


class BacklogCollector(Collector):
    """The webhook backlog, read from the database at each scrape."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "palo_database_up", "Whether the last scrape could read the database."
        )
        try:
            with self.database.read() as session:
                backlog = monitoring.webhook_backlog(session, now=datetime.now(UTC))
        except SQLAlchemyError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(
            "palo_outbox_pending_events",
            "Events committed but not yet turned into deliveries.",
            value=backlog.pending_events,
        )
        yield GaugeMetricFamily(
            "palo_outbox_lag_seconds",
            "Age of the oldest event not yet turned into deliveries (0 when none).",
            value=backlog.outbox_lag_seconds,
        )
        yield GaugeMetricFamily(
            "palo_webhook_deliveries_due",
            "Deliveries whose next attempt is due now.",
            value=backlog.due_deliveries,
        )
        yield GaugeMetricFamily(
            "palo_webhook_delivery_overdue_seconds",
            "How long the most overdue delivery has waited past its due time.",
            value=backlog.overdue_seconds,
        )


def exposition(database: Database | None) -> bytes:
    """The text a scrape receives: every process's samples, then the backlog."""
    registry: CollectorRegistry
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    output = generate_latest(registry)
    if database is not None:
        backlog = CollectorRegistry()
        backlog.register(BacklogCollector(database))
        output += generate_latest(backlog)
    return output
