"""The ASGI entry point gunicorn loads: ``palo_api.asgi:app``."""

from palo_api.app import create_app
from palo_api.logs import configure_logging

configure_logging()
app = create_app()
