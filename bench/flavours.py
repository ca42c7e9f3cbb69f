"""Requests per second of Connexion's FlaskApp and AsyncApp on a trivial route.

Each flavour runs under gunicorn with one uvicorn worker, as production would,
and is driven by wrk at a fixed concurrency. Rounds alternate the flavours so
that drift on a noisy machine hits both alike; bare Starlette is the ceiling.

    .venv/bin/python bench/flavours.py [--rounds 2] [--seconds 8]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAVOURS = {
    "FlaskApp": "flask_app",
    "AsyncApp": "async_app",
    "Starlette": "starlette_app",
}


def serve(target: str, port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "gunicorn", f"bench.flavours_app:{target}",
        "--worker-class", "uvicorn_worker.UvicornWorker",
        "--workers", "1", "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT)  # noqa: S603
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/ping") as reply:
                if reply.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit(f"{target} did not start")


def drive(port: int, seconds: int, connections: int) -> float:
    output = subprocess.run(  # noqa: S603
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{port}/v1/ping"],  # noqa: S607
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not match or "Non-2xx" in output or "Socket errors" in output:
        raise SystemExit(f"wrk run failed:\n{output}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")

    results: dict[str, list[float]] = {name: [] for name in FLAVOURS}
    for _ in range(args.rounds):
        for port, (name, target) in enumerate(FLAVOURS.items(), start=8901):
            server = serve(target, port)
            try:
                drive(port, 2, args.connections)  # warm-up
                results[name].append(drive(port, args.seconds, args.connections))
            finally:
                server.terminate()
                server.wait()

    base = statistics.median(results["AsyncApp"])
    print(f"| flavour | req/s (median of {args.rounds}) | vs AsyncApp |")
    print("|---|---:|---:|")
    for name, runs in results.items():
        median = statistics.median(runs)
        print(f"| {name} | {median:,.0f} | {median / base:.2f}x |")


if __name__ == "__main__":
    main()
