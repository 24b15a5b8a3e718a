# Cadenza: the two commands a newcomer needs are `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1
TUTORS ?= 40

.PHONY: run test setup setup-test browser vendor migrate demo lint format i18n-extract i18n-update bench bench-profiles bench-slots bench-slots-api bench-search clean

## run: install everything, migrate, load demo data and serve on the embedded defaults
run: setup
	$(BIN)/marketplace demo --tutors $(TUTORS)
	$(BIN)/marketplace run --host $(HOST) --port $(PORT) --workers $(WORKERS)

## test: install everything (incl. Debian's chromium) and run lint and the whole test suite
test: setup-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest $(PYTEST_ARGS)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

setup: $(BIN)/python vendor
	$(BIN)/pip install --quiet -c constraints.txt -e .

setup-test: $(BIN)/python vendor browser
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'

## vendor: front-end packages from npm, copied into static/vendor (not committed)
vendor: static/vendor/htmx.min.js static/vendor/livekit-client.umd.js

static/vendor/htmx.min.js static/vendor/livekit-client.umd.js &: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js
	cp node_modules/livekit-client/dist/livekit-client.umd.js static/vendor/livekit-client.umd.js

## browser: Debian's chromium for the browser tests (never `playwright install`)
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; \
	fi

migrate: setup
	$(BIN)/marketplace migrate

demo: setup
	$(BIN)/marketplace demo --tutors $(TUTORS)

lint:
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format:
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

## i18n-extract / i18n-update: refresh the template and merge new messages into every catalog
i18n-extract:
	$(BIN)/pybabel extract -F babel.cfg -k _ -k gettext -k ngettext:1,2 -k lazy_gettext \
	  --no-location --sort-output --project Cadenza -o marketplace/locale/messages.pot . >/dev/null

i18n-update: i18n-extract
	$(BIN)/pybabel update -i marketplace/locale/messages.pot -d marketplace/locale --no-fuzzy-matching --ignore-obsolete

bench: setup-test
	@command -v wrk >/dev/null || { SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); $$SUDO apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python bench/foundation.py

## bench-profiles: the profile page with 10,000 demo tutors, side by side with the bare route
bench-profiles: setup-test
	@command -v wrk >/dev/null || { SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); $$SUDO apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python bench/foundation.py --tutors 10000 --warm-starts 1 --extra profile=/tutors/clara-klavier

## bench-slots: the pure slot engine
bench-slots: setup
	$(BIN)/python bench/slots.py

## bench-slots-api: GET /api/v1/tutors/{id}/slots for a busy tutor (in-process, p50/p95)
bench-slots-api: setup
	$(BIN)/python bench/slots_api.py

## bench-search: demo --tutors 100000 on SQLite (and PostgreSQL db bench_search when reachable): search p50/p95, reindex, demo time
bench-search: setup
	$(BIN)/python bench/search.py

clean:
	rm -rf $(VENV) node_modules static/vendor var
