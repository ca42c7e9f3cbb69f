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

from palo_api.services import monitoring

__all__ = ["CONTENT_TYPE_LATEST", "exposition"]

# Up to ten seconds, the longest a request may legitimately take (a comment
# rendering hostile Markdown, a writer queueing for SQLite).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Methods a route can have; any other is counted as "other", so that clients
# cannot add series by inventing methods.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

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
    """The webhook backlog as the scrape read it, or the database as down."""

    def __init__(self, backlog: monitoring.Backlog | None) -> None:
        self.backlog = backlog

    def collect(self) -> Iterator[Metric]:
        backlog = self.backlog
        yield GaugeMetricFamily(
            "palo_database_up",
            "Whether this scrape could read the database (within 3 s).",
            value=0 if backlog is None else 1,
        )
        if backlog is None:
            return
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


def exposition(backlog: monitoring.Backlog | None) -> bytes:
    """The text a scrape receives: every process's samples, then the backlog
    read from the database (None when it could not be read)."""
    registry: CollectorRegistry
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    database = CollectorRegistry()
    database.register(BacklogCollector(backlog))
    return generate_latest(registry) + generate_latest(database)


def method_label(method: str) -> str:
    """The method as a label value: one of the known methods, or ``other``."""
    return method if method in KNOWN_METHODS else "other"


def _start_at_zero() -> None:
    """Give every known series a 0, so that rates and alerts see it at once."""
    for plan in ("starter", "business"):
        QUOTA_REJECTIONS.labels(
            plan, "no_api_access" if plan == "starter" else "quota_exceeded"
        )
    for grant in ("client_credentials", "refresh"):
        TOKENS_ISSUED.labels(grant)
    for reason in ("invalid_client", "too_many_attempts", "invalid_token"):
        TOKEN_FAILURES.labels(reason)


_start_at_zero()
