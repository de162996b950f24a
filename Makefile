# The routines of the helpdesk. `make run` and `make test` do all the set-up a fresh machine needs.
SHELL := /bin/bash
PY := .venv/bin/python
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
WORKSPACE_FILES := pyproject.toml uv.lock $(wildcard */pyproject.toml libs/*/pyproject.toml services/*/pyproject.toml)

.PHONY: install run test test-fast test-e2e screenshots lint fmt bench docs vendor clean

## install: Python dependencies (uv workspace in .venv), Kafka jars and the store binary (reused when present)
install: .venv/.installed .cache/.infra-ready

.venv/.installed: $(WORKSPACE_FILES)
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --all-packages --frozen
	@touch $@

.cache/.infra-ready: infra/stack.py infra/kafka/pom.xml infra/ferretdb/go.mod infra/ferretdb/main.go | .venv/.installed
	$(PY) infra/stack.py install
	@mkdir -p .cache && touch $@

## run: the whole helpdesk on this machine (Ctrl-C stops every process)
run: install
	$(PY) infra/local.py run

## test: every test: fast tests, then the journeys on the real Kafka and store
test: install
	$(PY) -m pytest -p no:cacheprovider

test-fast: install
	$(PY) -m pytest -p no:cacheprovider -m "not e2e and not integration"

test-e2e: install
	$(PY) -m pytest -p no:cacheprovider tests/e2e

## screenshots: the browser journeys (Debian's Chromium), keeping their screenshots in docs/screenshots
screenshots: install
	HELPDESK_SCREENSHOTS=docs/screenshots $(PY) -m pytest -p no:cacheprovider tests/e2e/test_browser.py tests/e2e/test_browser_admin.py tests/e2e/test_browser_security.py

## bench: parse-and-publish on one ingest process (BENCH_INGEST_EMAILS=6000), N emails through the whole journey (BENCH_EMAILS=2000), then the tickets service at BENCH_TICKETS=1000000 (seeded once into BENCH_DATA, ~25 min, and kept), then the portal's queue page on the same tickets with BENCH_PORTAL_AGENTS=50 agents for BENCH_PORTAL_SECONDS=60 per scenario (and at people's pace again with BENCH_PORTAL_WRITES=5 ticket writes/s), then BENCH_TIMERS=100000 pending timers, then rule evaluation with 500 rules
BENCH_DATA ?= .data/bench/tickets-$${BENCH_TICKETS:-1000000}
bench: install
	$(PY) tools/bench_ingest.py --emails $${BENCH_INGEST_EMAILS:-6000}
	$(PY) tools/bench.py --emails $${BENCH_EMAILS:-2000}
	$(PY) tools/bench_tickets.py --tickets $${BENCH_TICKETS:-1000000} --dir $(BENCH_DATA) --keep
	$(PY) tools/bench_portal.py --tickets $${BENCH_TICKETS:-1000000} --dir $(BENCH_DATA) --keep \
		--agents $${BENCH_PORTAL_AGENTS:-50} --duration $${BENCH_PORTAL_SECONDS:-60} --scenarios $${BENCH_PORTAL_SCENARIOS:-closed,think}
	$(PY) tools/bench_portal.py --tickets $${BENCH_TICKETS:-1000000} --dir $(BENCH_DATA) --keep \
		--agents $${BENCH_PORTAL_AGENTS:-50} --duration $${BENCH_PORTAL_SECONDS:-60} --scenarios think \
		--writes-per-second $${BENCH_PORTAL_WRITES:-5}
	$(PY) tools/bench_timers.py --timers $${BENCH_TIMERS:-100000} --lead 20
	$(PY) tools/bench_rules.py --rules 500 --events 20000

## vendor: update the portal's vendored htmx from the npm registry (pinned version, sha512-checked; needs the network)
vendor: install
	$(PY) tools/vendor_htmx.py

## docs: AsyncAPI of every service, OpenAPI of the HTTP APIs, JSON schemas of the contracts
docs: install
	$(PY) tools/docs.py

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

fmt: install
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

clean:
	rm -rf .data
