"""The ASGI entry point gunicorn loads: ``palo_api.asgi:app``."""

import warnings

# Connexion 3.3 imports Starlette's test client at import time, which warns
# about httpx on every server start; the server never uses that client.
warnings.filterwarnings(
    "ignore", message="Using `httpx` with `starlette.testclient` is deprecated"
)

from palo_api.app import create_app  # noqa: E402
from palo_api.config import Settings  # noqa: E402
from palo_api.logs import configure_logging  # noqa: E402

settings = Settings.from_env()
settings.refuse_development_settings()
configure_logging(settings)
app = create_app(settings)
