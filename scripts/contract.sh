#!/usr/bin/env bash
# Run Schemathesis against a live gunicorn server started as production would.
#
#   scripts/contract.sh                     # on a fresh SQLite file
#   PALO_DATABASE_URL=postgresql://... scripts/contract.sh
#
# Every check runs, with a fixed seed, so a run is repeatable; the whole run
# is stopped after PALO_CONTRACT_TIME_LIMIT seconds (900) and then fails.
# Exits non-zero on any Schemathesis failure.
#
# schemathesis.toml turns every check on and narrows a few for some
# operations, each with its reason. `--checks all` is not passed: a check named
# on the command line overrides those per-operation settings (Schemathesis
# 4.32), which would turn the written exceptions back on.
set -euo pipefail

cd "$(dirname "$0")/.."
venv_bin="${VENV_BIN:-.venv/bin}"
port="${PALO_CONTRACT_PORT:-8765}"
seed="${PALO_CONTRACT_SEED:-20261203}"
examples="${PALO_CONTRACT_MAX_EXAMPLES:-100}"
time_limit="${PALO_CONTRACT_TIME_LIMIT:-900}"
workdir="$(mktemp -d)"
export PALO_DATABASE_URL="${PALO_DATABASE_URL:-sqlite:///$workdir/contract.db}"
export PALO_SIGNING_KEYS="contract:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export PALO_LOG_LEVEL=WARNING
# Generated webhook URLs name hosts that resolve nowhere; allowing private
# targets accepts them, so the stateful phase reaches a webhook's other
# operations. No worker runs here, so nothing is ever sent. The guard itself
# is tested in tests/test_webhooks.py and tests/test_targets.py.
export PALO_WEBHOOK_ALLOW_PRIVATE_TARGETS=true
# Schemathesis sends POST /auth/token hundreds of wrong credentials from this
# one address, and fetches the contract client's token again every 300 s from
# the same address: past the per-address limit of failed logins (50 in 15
# minutes) that fetch is refused with 429 and every later call fails to
# authenticate. The limit per client id still applies, and
# tests/test_throttle.py tests both.
export PALO_LOGIN_MAX_FAILURES_PER_ADDRESS=100000

server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$workdir"
}
trap cleanup EXIT

"$venv_bin/palo" db upgrade
org=$("$venv_bin/palo" admin create-org --name "Contract" --plan enterprise)
org_id=$(printf '%s' "$org" | "$venv_bin/python" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
user=$("$venv_bin/palo" admin create-user --org "$org_id" \
  --email "contract-$$-$RANDOM@example.com" --name "Contract" --org-role admin)
user_id=$(printf '%s' "$user" | "$venv_bin/python" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
client=$("$venv_bin/palo" admin create-client --user "$user_id" --name contract)
PALO_CONTRACT_CLIENT_ID=$(printf '%s' "$client" | "$venv_bin/python" -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
PALO_CONTRACT_CLIENT_SECRET=$(printf '%s' "$client" | "$venv_bin/python" -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
export PALO_CONTRACT_CLIENT_ID PALO_CONTRACT_CLIENT_SECRET

# A server already on the port would answer the readiness loop below, and the
# run would fuzz it with credentials it does not know.
if curl -sS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; then
  echo "contract: something already listens on port $port; set PALO_CONTRACT_PORT" >&2
  exit 1
fi

"$venv_bin/palo" serve --host 127.0.0.1 --port "$port" --workers 2 \
  >"$workdir/server.log" 2>&1 &
server_pid=$!

for _ in $(seq 1 100); do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    cat "$workdir/server.log" >&2
    echo "contract: the server did not start" >&2
    exit 1
  fi
  if curl -fsS "http://127.0.0.1:$port/v1/openapi.json" >/dev/null 2>&1; then break; fi
  sleep 0.2
done

# Schemathesis reports a server that refuses every token, or every valid
# ticket, as warnings and still passes. So first: the contract's credentials
# get a token, and with it a project and a ticket are created.
"$venv_bin/python" - "$port" <<'PY' || { tail -n 50 "$workdir/server.log" >&2; exit 1; }
import json, os, sys, urllib.request

base = f"http://127.0.0.1:{sys.argv[1]}/v1"


def call(method, path, body, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        base + path, json.dumps(body).encode(), headers, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()[:300]


credentials = {
    "client_id": os.environ["PALO_CONTRACT_CLIENT_ID"],
    "client_secret": os.environ["PALO_CONTRACT_CLIENT_SECRET"],
}
steps = []
status, token = call("POST", "/auth/token", credentials)
steps.append(("POST /auth/token", status, 200))
if status == 200:
    token = token["access_token"]
    status, project = call("POST", "/projects", {"name": "Preflight"}, token)
    steps.append(("POST /projects", status, 201))
    if status == 201:
        body = {"project_id": project["id"], "title": "Preflight"}
        status, _ = call("POST", "/tickets", body, token)
        steps.append(("POST /tickets", status, 201))
for name, got, expected in steps:
    if got != expected:
        sys.exit(f"contract: preflight {name} answered {got}, not {expected}")
print("contract: preflight token, project and ticket created")
PY

# Two runs on one server: the stateless phases, then the stateful phase on
# its own. Inside one run, Schemathesis 4.32 stopped the stateful phase after
# 13 to 27 sequences; on its own it runs its whole budget (schemathesis.toml).
deadline=$(($(date +%s) + time_limit))
status=0
for phases in examples,coverage,fuzzing stateful; do
  started=$(date +%s)
  left=$((deadline - started))
  if [ "$left" -le 0 ]; then
    echo "contract: the $time_limit s limit was spent before the $phases run" >&2
    status=124
    break
  fi
  run_status=0
  timeout "$left" "$venv_bin/schemathesis" run openapi/palo-v1.yaml \
    --url "http://127.0.0.1:$port/v1" \
    --phases "$phases" \
    --seed "$seed" \
    --max-examples "$examples" \
    --request-timeout 10 \
    --no-shrink \
    "$@" || run_status=$?
  echo "contract: Schemathesis ($phases) took $(($(date +%s) - started)) s" \
    "(seed $seed, $examples examples per operation, on ${PALO_DATABASE_URL%%[:+]*})" >&2
  if [ "$run_status" -eq 124 ]; then
    echo "contract: stopped at the $time_limit s limit" >&2
  fi
  if [ "$run_status" -ne 0 ]; then status=$run_status; fi
done

if [ "$status" -ne 0 ]; then
  echo "--- server log (last 50 lines) ---" >&2
  tail -n 50 "$workdir/server.log" >&2
fi
exit "$status"
