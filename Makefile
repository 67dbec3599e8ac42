# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install chromium lint typecheck pytest demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Where a C compiler and Python's headers exist, setup.py must compile (a failure is an
# error, not a quiet pure-Python install) and the tests check that it did.
REQUIRE_COMPILED := P2PKIT_REQUIRE_COMPILED=$(shell command -v cc >/dev/null && $(PYTHON) -c \
	"import os, sysconfig; print(int(os.path.exists(sysconfig.get_paths()['include'] + '/Python.h')))" \
	2>/dev/null || echo 0)

$(STAMP): pyproject.toml | $(BIN)/python
	$(REQUIRE_COMPILED) $(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP) $(NATIVE)

# setup.py compiles the per-datagram modules with mypyc, in place beside their sources
# (where they win on import): rebuilt here whenever a source is newer than the last build.
NATIVE := $(VENV)/.native
NATIVE_SOURCES := setup.py $(wildcard p2pkit/*.py plugins/rudp/*.py simulator/*.py)

$(NATIVE): $(NATIVE_SOURCES) | $(STAMP)
	$(REQUIRE_COMPILED) $(BIN)/python -m pip install --quiet --no-build-isolation --no-deps -e .
	touch $(NATIVE)

install: $(STAMP) $(NATIVE)

# A node with its web UI on http://localhost:3000 (seed 000), on the embedded defaults.
run: $(STAMP) $(NATIVE)
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

pytest: $(STAMP) $(NATIVE)
	$(REQUIRE_COMPILED) $(BIN)/python -m pytest -q
	# the compiled modules' own tests once more on their Python source (p2pkit/compiled.py)
	P2PKIT_PURE_PYTHON=1 $(BIN)/python -m pytest -q tests/kernel tests/plugins/rudp tests/simulator

clean:
	rm -rf $(VENV) build
	find p2pkit plugins simulator webui -name '*.so' -delete  # as setup.py's in-place builds
