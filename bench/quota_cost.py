"""What counting a request against the daily quota costs, as a ratio.

    python bench/quota_cost.py --url postgresql://postgres@127.0.0.1/palo_scratch

Serves `GET /v1/projects` in process, alternately for an Enterprise caller
(not counted) and a Business one (counted), and prints the best of three
rounds of each and their ratio.
"""

from __future__ import annotations

import argparse
import time

from starlette.testclient import TestClient

from palo_api.app import create_app
from palo_api.config import Settings
from palo_api.db import migrate
from palo_api.runtime import Runtime
from palo_api.services import admin

KEYS = "bench:" + "b" * 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="database URL (scratch)")
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()

    migrate.upgrade(args.url)
    settings = Settings.from_env(
        {"PALO_DATABASE_URL": args.url, "PALO_SIGNING_KEYS": KEYS}
    )
    runtime = Runtime.from_settings(settings)
    tokens = {}
    for plan in ("enterprise", "business"):
        with runtime.database.write() as session:
            org = admin.create_org(session=session, name=plan, plan=plan)
            user = admin.create_user(
                session=session,
                org_id=org.id,
                email=f"{plan}-{time.time_ns()}@example.com",
                name=plan,
                org_role="admin",
            )
            client = admin.create_client(
                session=session, hasher=runtime.hasher, user_id=user.id, name=None
            ).client
            session.commit()
            tokens[plan] = runtime.tokens.issue(
                user_id=user.id, org_id=org.id, client_id=client.client_id
            ).access_token

    best = dict.fromkeys(tokens, float("inf"))
    with TestClient(create_app(settings)) as client:
        for _ in range(3):
            for plan, token in tokens.items():
                headers = {"Authorization": f"Bearer {token}"}
                started = time.perf_counter()
                for _ in range(args.requests):
                    response = client.get("/v1/projects", headers=headers)
                    assert response.status_code == 200, response.text
                elapsed = (time.perf_counter() - started) / args.requests * 1000
                best[plan] = min(best[plan], elapsed)
    for plan, ms in best.items():
        print(f"{plan:<10} {ms:6.2f} ms per request (best of 3)")
    print(f"business / enterprise = {best['business'] / best['enterprise']:.2f}")


if __name__ == "__main__":
    main()
