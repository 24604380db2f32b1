# `make run` and `make test` work on a fresh machine: they create .venv and install first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JS     := tests/js
ARGS   ?=

.PHONY: run test lint bench clean js

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The OpenTelemetry JS SDK used by the end-to-end tests (skipped, not failed, without npm
# outside CI; the test itself names the missing package).
$(JS)/node_modules/.installed: $(JS)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(JS) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "npm not found: the OpenTelemetry JS SDK test will be skipped"; fi

js: $(JS)/node_modules/.installed

run: $(STAMP)
	$(BIN)/pantau serve $(ARGS)

test: $(STAMP) js
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) $(JS)/node_modules pantau-data .pytest_cache .ruff_cache
