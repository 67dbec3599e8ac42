# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install chromium lint typecheck pytest demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

# A node with its web UI on http://localhost:3000 (seed 000), on the embedded defaults.
run: $(STAMP)
	$(BIN)/p2pkit web

demo: $(STAMP)
	$(BIN)/python -m p2pkit.webui.demo

test: $(STAMP) chromium lint typecheck pytest

# The web UI's browser tests drive Debian's chromium (never a downloaded browser build).
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

lint: $(STAMP)
	$(BIN)/ruff check p2pkit plugins simulator webui benchmarks tests

# mypy checks the installed layout, where plugins, simulator and webui are packages inside
# p2pkit: a tree of symlinks in build/typecheck gives it that layout without copying
# (the benchmarks, tests and docs' examples beside it, checked as strictly).
typecheck: $(STAMP)
	rm -rf build/typecheck && mkdir -p build/typecheck
	cp -rs $(CURDIR)/p2pkit build/typecheck/p2pkit
	for d in plugins simulator webui; do ln -s $(CURDIR)/$$d build/typecheck/p2pkit/$$d; done
	for d in benchmarks tests docs; do ln -s $(CURDIR)/$$d build/typecheck/$$d; done
	cd build/typecheck && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml p2pkit benchmarks tests docs/examples

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV)
