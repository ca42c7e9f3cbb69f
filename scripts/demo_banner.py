"""Create the demo organization once and print how to call the API with it.

Run by `make run`: the first time it creates a demo organization, admin user
and API client (kept in var/demo-credentials.json, which git ignores); every
time it prints the credentials and a ready-to-paste curl command.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def main() -> None:
    host, port = sys.argv[1], sys.argv[2]
    palo = Path(sys.executable).with_name("palo")
    output = subprocess.run(  # noqa: S603 - our own console script
        [str(palo), "admin", "demo"], check=True, capture_output=True, text=True
    ).stdout
    demo = json.loads(output)
    base = f"http://{host}:{port}/v1"
    body = json.dumps(
        {"client_id": demo["client_id"], "client_secret": demo["client_secret"]}
    )

    print(
        f"""
PALO demo credentials (kept in var/demo-credentials.json):
  client_id:     {demo["client_id"]}
  client_secret: {demo["client_secret"]}

Get a token:
  TOKEN=$(curl -s -X POST {base}/auth/token -H 'Content-Type: application/json' \\
    -d '{body}' \\
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

Then:
  curl -s -X POST {base}/projects -H "Authorization: Bearer $TOKEN" \\
    -H 'Content-Type: application/json' -d '{{"name": "My first project"}}'
  curl -s {base}/projects -H "Authorization: Bearer $TOKEN"

Interactive documentation: {base}/ui/
""",
        flush=True,
    )


if __name__ == "__main__":
    main()
