"""gunicorn settings that ``palo serve`` loads (``--config python:...``).

gunicorn's own messages go through the same structured logging as the
app's, and a worker that exits has its metric files marked dead, so that a
scrape neither loses its counts nor keeps reporting its gauges.
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn import glogging
from prometheus_client import multiprocess

from palo_api.logs import configure_logging


class Logger(glogging.Logger):
    """gunicorn's logger, writing through the root handler ``palo`` set up."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        configure_logging()
        root_handlers = logging.getLogger().handlers
        # uvicorn's worker copies these handlers onto uvicorn's own loggers.
        self.error_log.handlers[:] = list(root_handlers)
        self.error_log.propagate = False
        # Each request has one line, written by the app with more in it.
        self.access_log.handlers[:] = [logging.NullHandler()]
        self.access_log.propagate = False


logger_class = Logger


def child_exit(_server: Any, worker: Any) -> None:
    """Forget the live gauges of a worker that is gone (its counters stay)."""
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
