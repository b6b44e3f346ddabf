# The two commands of README.md. Each installs what it needs on a fresh machine.
#   make run    replay scenarios/ on the embedded reference and judge claims.yaml (kcverify run)
#   make test   lint, type-check, check the import layering and run the whole test suite, real PostgreSQL, Kafka and Redis included
# Everything else here is what those two need.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test deep lint typecheck prerequisites clean

run: $(STAMP)
	$(BIN)/kcverify run scenarios/ --claims claims.yaml

# The tests that need no real service run two at a time (pytest-xdist: they are CPU-bound, and there are
# two cores); the integration tests share one stack (tests/integration/conftest.py) and run one at a time,
# in a process that holds real Kafka clients: should it crash natively, tests/native_backtrace.sh prints where.
test: $(STAMP) prerequisites
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q -n 2 -m "not integration and not deep"
	tests/native_backtrace.sh $(BIN)/python -m pytest -q -m "integration and not deep"

# Long measurement runs (e.g. 1000+ Schemathesis cases per operation), outside the test command.
deep: $(STAMP)
	$(BIN)/pytest -q -m deep

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The real services the integration tests start themselves (kcverify stack): PostgreSQL, Redis,
# Java + Maven for the Kafka broker; and Chromium, in which a test opens the HTML report (headless).
# Installed from Debian's packages when missing (needs root).
prerequisites: $(STAMP)
	$(BIN)/kcverify stack check --install
	command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

clean:
	rm -rf $(VENV) .kcverify kcverify-report .pytest_cache .mypy_cache .ruff_cache
