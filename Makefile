# The commands the README shows. `make run` and `make test` work on a fresh
# machine with Python 3.11+: they create .venv and install what they need.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PG_TEST_URL ?= postgresql://postgres@127.0.0.1:5432/test
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv tools run test test-sqlite test-postgres lint lint-openapi compat types-check sdk-check contract contract-postgres bench wrk bench-flavours bench-tickets bench-webhooks clean

$(BIN)/palo: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/palo

# The document's tools: npm packages pinned in tools/package-lock.json, and the
# Python SDK generator in a virtualenv of its own (tools/sdk-requirements.txt).
NPM_TOOLS := tools/node_modules/.package-lock.json
SDK_TOOLS := build/sdk-tools/bin/openapi-python-client
export REDOCLY_TELEMETRY := off
export REDOCLY_SUPPRESS_UPDATE_NOTICE := true

$(NPM_TOOLS): tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund
	touch $@

$(SDK_TOOLS): tools/sdk-requirements.txt
	$(PYTHON) -m venv build/sdk-tools
	build/sdk-tools/bin/pip install --quiet -r tools/sdk-requirements.txt
	touch $@

tools: $(NPM_TOOLS) $(SDK_TOOLS)

## Serve the API on the embedded SQLite database, creating demo credentials once.
run: $(BIN)/palo
	$(BIN)/palo db upgrade
	@$(BIN)/python scripts/demo_banner.py "$(HOST)" "$(PORT)"
	$(BIN)/palo serve --host $(HOST) --port $(PORT)

## The whole suite on SQLite, then on PostgreSQL ($(PG_TEST_URL)).
test: $(BIN)/palo test-sqlite test-postgres

test-sqlite: $(BIN)/palo tools
	$(BIN)/pytest -q

test-postgres: $(BIN)/palo tools
	PALO_TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/pytest -q

## ruff (lint and format) and mypy.
lint: $(BIN)/palo
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## The document: openapi-spec-validator, then Redocly's lint (redocly.yaml).
lint-openapi: $(BIN)/palo $(NPM_TOOLS)
	$(BIN)/openapi-spec-validator openapi/palo-v1.yaml
	tools/node_modules/.bin/redocly lint --config redocly.yaml openapi/palo-v1.yaml

## Fail on a change that breaks clients of the released document.
compat: $(NPM_TOOLS)
	node tools/compat.mjs openapi/released/palo-v1.yaml openapi/palo-v1.yaml

## TypeScript types from the document, and a client that must compile against them.
types-check: $(NPM_TOOLS)
	mkdir -p build/ts
	tools/node_modules/.bin/openapi-typescript openapi/palo-v1.yaml -o build/ts/palo-v1.ts
	tools/node_modules/.bin/tsc -p tools/ts/tsconfig.json

## A generated Python SDK against a live server, and the TypeScript types.
sdk-check: $(BIN)/palo tools types-check
	$(BIN)/pytest -q tests/test_sdk_e2e.py

## Schemathesis against the live gunicorn server, on SQLite and on PostgreSQL.
contract: $(BIN)/palo
	scripts/contract.sh

contract-postgres: $(BIN)/palo
	PALO_DATABASE_URL=$(PG_TEST_URL) scripts/contract.sh

## The API under load at 10k and 1M tickets against its floor and ceiling, on
## scratch PostgreSQL databases $(BENCH_DB)_10k and $(BENCH_DB)_1m (dropped and
## seeded again; a few minutes); prints the table and writes bench/results.md.
## Needs wrk, which it installs from Debian's packages when it can (root and
## apt-get); otherwise it says how.
BENCH_DB ?= palo_bench
BENCH_PORT ?= 8900
BENCH_ARGS ?=
bench: $(BIN)/palo wrk
	$(BIN)/python bench/api_bench.py --db $(BENCH_DB) --port $(BENCH_PORT) $(BENCH_ARGS)

## wrk, the HTTP load generator of the benchmarks.
wrk:
	@command -v wrk >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing wrk from Debian's packages"; \
	    apt-get install -y -q wrk >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }; \
	  fi; \
	  command -v wrk >/dev/null || { echo "the benchmarks need wrk, the HTTP load generator: apt-get install -y wrk (as root)" >&2; exit 1; }; \
	}

## Requests per second of FlaskApp, AsyncApp and bare Starlette (needs wrk).
bench-flavours: $(BIN)/palo wrk
	$(BIN)/python bench/flavours.py --rounds 2 --seconds 8

## Query plans of the ticket list at a million tickets, on a scratch PostgreSQL
## database ($(BENCH_PG_DB), dropped and created again).
BENCH_PG_DB ?= palo_bench
BENCH_PG_URL := postgresql://postgres@127.0.0.1:5432/$(BENCH_PG_DB)
bench-tickets: $(BIN)/palo
	dropdb -h 127.0.0.1 -U postgres --if-exists $(BENCH_PG_DB)
	createdb -h 127.0.0.1 -U postgres $(BENCH_PG_DB)
	$(BIN)/python bench/seed_tickets.py --url $(BENCH_PG_URL) --tickets 1000000
	$(BIN)/python bench/ticket_plans.py --url $(BENCH_PG_URL)

## Webhook delivery under load: thousands of tickets, two workers, one receiver,
## on a scratch PostgreSQL database ($(BENCH_HOOKS_DB), dropped and created again).
BENCH_HOOKS_DB ?= palo_bench_hooks
bench-webhooks: $(BIN)/palo
	dropdb -h 127.0.0.1 -U postgres --if-exists $(BENCH_HOOKS_DB)
	createdb -h 127.0.0.1 -U postgres $(BENCH_HOOKS_DB)
	$(BIN)/python bench/webhooks_load.py --url postgresql://postgres@127.0.0.1:5432/$(BENCH_HOOKS_DB)
	dropdb -h 127.0.0.1 -U postgres $(BENCH_HOOKS_DB)
	createdb -h 127.0.0.1 -U postgres $(BENCH_HOOKS_DB)
	$(BIN)/python bench/webhooks_load.py --backlog --url postgresql://postgres@127.0.0.1:5432/$(BENCH_HOOKS_DB)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache var build tools/node_modules
