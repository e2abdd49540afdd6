# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
POSTGRES_TEST_URL ?= postgres://postgres@127.0.0.1:5432/pluggedin
HOST_PORT ?= 127.0.0.1:8000

.PHONY: install run test test-sqlite test-postgres test-pgbouncer lint format bench clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

.env:
	cp .env.example .env

## Serve on 127.0.0.1:8000 with the in-process scheduler, on the embedded SQLite database.
run: install .env
	$(PY) manage.py migrate --noinput
	$(PY) manage.py runserver $(HOST_PORT)

## The whole suite, on SQLite and then on PostgreSQL (which must be running), then the
## database-facing tests through PgBouncer in transaction mode.
test: test-sqlite test-postgres test-pgbouncer

test-sqlite: install
	DATABASE_URL=sqlite:///$(CURDIR)/test.sqlite3 $(PY) -m pytest $(PYTEST_ARGS)

test-postgres: install
	DATABASE_URL=$(POSTGRES_TEST_URL) $(PY) -m pytest $(PYTEST_ARGS)

## Locks, concurrency, runner, scheduler, endpoints, admin, emails and cleanups with
## DATABASE_URL pointing at a PgBouncer (transaction mode) started for the pass on a
## loopback port in front of POSTGRES_TEST_URL's server.
PGBOUNCER_TESTS ?= tests/maintenance tests/emails tests/oauth
PGBOUNCER_IGNORE ?= --ignore=tests/maintenance/test_admin_browser.py \
	--ignore=tests/maintenance/test_crontab.py --ignore=tests/maintenance/test_checks.py
test-pgbouncer: install
	POSTGRES_TEST_URL=$(POSTGRES_TEST_URL) $(PY) -m tests.pgbouncer -- \
		$(PY) -m pytest $(PGBOUNCER_TESTS) $(PGBOUNCER_IGNORE) $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## The benchmarks (PostgreSQL on 127.0.0.1:5432; they create and drop their own databases);
## the cleanup one also through a PgBouncer in transaction mode that it starts.
bench: install
	$(PY) bench/pkce_cleanup.py --pgbouncer
	$(PY) bench/emails_throughput.py
	$(PY) bench/metrics_scrape.py

clean:
	rm -rf $(VENV) .pytest_cache
