"""Webhook delivery under load: thousands of tickets, two workers, one receiver.

    python bench/webhooks_load.py --url postgresql://postgres@127.0.0.1/palo_bench_hooks

Starts `palo serve` (2 gunicorn workers) and two `palo worker` processes on
the database, a receiver on loopback, subscribes it to `ticket.created`, and
creates the tickets through the API from several threads. It then waits for
every event and prints the delivery throughput and the lag from the event's
commit to its arrival. It exits non-zero if an event is missing or if any
delivery attempt arrived twice.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from palo_api.config import Settings
from palo_api.db import migrate
from palo_api.runtime import Runtime
from palo_api.services import admin

KEYS = "bench:" + "b" * 64


class Arrivals:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lags: dict[str, float] = {}
        self.attempts: Counter[str] = Counter()
        self.first: float | None = None
        self.last: float | None = None
        self.pinged = threading.Event()

    def record(self, headers: Any, body: bytes) -> None:
        now = time.time()
        event = json.loads(body)
        if event["type"] == "ping":
            self.pinged.set()
            return
        committed = datetime.fromisoformat(event["created_at"]).timestamp()
        with self.lock:
            self.attempts[headers["X-Palo-Delivery"]] += 1
            self.lags.setdefault(event["id"], now - committed)
            self.first = self.first or now
            self.last = now


def receiver(arrivals: Arrivals) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            arrivals.record(self.headers, body)
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def request(port: int, token: str, method: str, path: str, body: Any) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(
            method,
            path,
            body=json.dumps(body),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
            },
        )
        response = conn.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
        return json.loads(data)
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="database URL (scratch)")
    parser.add_argument("--tickets", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--backlog",
        action="store_true",
        help="start the workers only once every ticket exists: measures how "
        "fast a backlog drains, rather than delivery alongside the writes",
    )
    args = parser.parse_args()

    env = {
        **os.environ,
        "PALO_DATABASE_URL": args.url,
        "PALO_SIGNING_KEYS": KEYS,
        "PALO_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        "PALO_LOG_LEVEL": "WARNING",
    }
    migrate.upgrade(args.url)
    runtime = Runtime.from_settings(
        Settings.from_env({"PALO_DATABASE_URL": args.url, "PALO_SIGNING_KEYS": KEYS})
    )
    with runtime.database.write() as session:
        org = admin.create_org(session=session, name="Bench", plan="enterprise")
        user = admin.create_user(
            session=session,
            org_id=org.id,
            email=f"bench-{time.time_ns()}@example.com",
            name="Bench",
            org_role="admin",
        )
        client = admin.create_client(
            session=session, hasher=runtime.hasher, user_id=user.id, name=None
        ).client
        session.commit()
        token = runtime.tokens.issue(
            user_id=user.id, org_id=org.id, client_id=client.client_id
        ).access_token

    arrivals = Arrivals()
    hook_server = receiver(arrivals)
    palo = str(Path(sys.executable).with_name("palo"))
    port = free_port()
    processes = [
        subprocess.Popen(  # noqa: S603 - our own command
            [palo, "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
        )
    ]
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        hook_url = f"http://127.0.0.1:{hook_server.server_address[1]}/hook"
        hook = request(
            port,
            token,
            "POST",
            "/v1/webhooks",
            {"url": hook_url, "events": ["ticket.created"]},
        )
        project = request(port, token, "POST", "/v1/projects", {"name": "Load"})

        def start_workers() -> None:
            for _ in range(2):
                processes.append(
                    subprocess.Popen(  # noqa: S603 - our own command
                        [palo, "worker", "--poll-interval", "0.2"],
                        env=env,
                        stdout=subprocess.DEVNULL,
                    )
                )
            # Measure delivery, not start-up: wait for a ping to arrive.
            request(port, token, "POST", f"/v1/webhooks/{hook['id']}/ping", {})
            if not arrivals.pinged.wait(60):
                raise RuntimeError("the workers delivered no ping within 60 s")

        if not args.backlog:
            start_workers()

        started = time.time()
        body = {"project_id": project["id"], "title": "Load ticket"}
        with ThreadPoolExecutor(args.clients) as pool:
            ids = list(
                pool.map(
                    lambda _i: request(port, token, "POST", "/v1/tickets", body)["id"],
                    range(args.tickets),
                )
            )
        created = time.time()
        if args.backlog:
            start_workers()
        deadline = created + args.timeout
        while len(arrivals.lags) < len(ids) and time.time() < deadline:
            time.sleep(0.2)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
        hook_server.shutdown()
        runtime.database.dispose()

    lags = sorted(arrivals.lags.values())
    twice = sum(1 for n in arrivals.attempts.values() if n > 1)
    missing = len(ids) - len(lags)
    span = (arrivals.last or created) - (arrivals.first or started)
    print(f"tickets created           {len(ids)} in {created - started:.1f} s "
          f"({len(ids) / (created - started):.0f}/s)")  # fmt: skip
    print(f"events delivered          {len(lags)} (missing {missing})")
    print(f"attempts received twice   {twice}")
    if lags:
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        print(f"delivery throughput       {len(lags) / max(span, 1e-9):.0f} events/s")
        print(f"lag commit->arrival p50   {statistics.median(lags) * 1000:.0f} ms")
        print(f"lag commit->arrival p99   {p99 * 1000:.0f} ms")
    return 1 if missing or twice else 0


if __name__ == "__main__":
    sys.exit(main())
