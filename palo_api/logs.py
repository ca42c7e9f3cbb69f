"""Logging to stderr, readable in a terminal; the level comes from settings."""

from __future__ import annotations

import logging
import sys

from palo_api.config import Settings


def configure_logging(settings: Settings | None = None) -> None:
    """Send every log record to stderr at the configured level."""
    settings = settings or Settings.from_env()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # Connexion warns on every request to an operation with two body media
    # types (the token endpoint's JSON and OAuth2 form), which is by design.
    logging.getLogger("connexion.operations").setLevel(logging.ERROR)
