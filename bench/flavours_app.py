"""The same trivial synchronous handler under Connexion's FlaskApp and AsyncApp.

Loaded by gunicorn as ``bench.flavours_app:flask_app`` / ``:async_app`` /
``:starlette_app`` from `bench/flavours.py`.
"""

from __future__ import annotations

from typing import Any

import connexion
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "flavours", "version": "1"},
    "servers": [{"url": "/v1"}],
    "paths": {
        "/ping": {
            "get": {
                "operationId": "bench.flavours_app.ping",
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"status": {"type": "string"}},
                                }
                            }
                        },
                    }
                },
            }
        }
    },
}


def ping() -> tuple[dict[str, str], int]:
    return {"status": "ok"}, 200


def _build(app_class: Any) -> Any:
    app = app_class(__name__)
    app.add_api(SPEC)
    return app


flask_app = _build(connexion.FlaskApp)
async_app = _build(connexion.AsyncApp)


async def _starlette_ping(_request: Any) -> JSONResponse:
    return JSONResponse({"status": "ok"})


starlette_app = Starlette(routes=[Route("/v1/ping", _starlette_ping)])
