# abuse-desk: `make run` starts the desk, `make test` runs the tests. Python 3.11+ is all it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Every runtime and dev dependency, and pip and setuptools, at exact versions with their hashes:
# the same install on any date. pyproject.toml keeps the ranges; `make lock` refreshes this file.
LOCK   := requirements.lock

.PHONY: run test test-at lint bench accuracy lock clean help

help:
	@echo "make run    start the whole desk (SMTP 127.0.0.1:2525, web http://127.0.0.1:8025)"
	@echo "make test   run the test suite"
	@echo "make test-at AT='2026-12-31 23:40:00 UTC'"
	@echo "            run the time-dependent suites as if it were AT (needs faketime)"
	@echo "make lint   ruff and mypy"
	@echo "make bench  run the benchmarks (BENCH_ARGS=--quick for a smoke run), write bench/results.json"
	@echo "make accuracy  score the desk on the labelled corpus (ACCURACY_ARGS=--misses lists the misses)"
	@echo "make lock   refresh requirements.lock after a change to pyproject.toml's dependencies"
	@echo "            (keeps the other pins; make lock UPGRADE=1 moves every pin to the newest allowed)"
	@echo "make clean  remove the virtualenv and ./var"

# Installs only what the lock names, each file checked against its hash; then the project itself,
# editable, with setuptools from the lock (no build isolation) and no resolution of its own.
# pip check fails when pyproject.toml wants something the lock lacks: run `make lock`.
$(STAMP): $(LOCK) pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "abuse-desk needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@$(BIN)/python -m pip check >/dev/null || { $(BIN)/python -m pip check; \
	  echo "$(LOCK) does not cover pyproject.toml's dependencies: run make lock" >&2; exit 1; }
	touch $(STAMP)

# Rewrites $(LOCK) from pyproject.toml (dependencies and the dev extra) and requirements/build.in,
# for every platform and Python >= 3.11, keeping the pins that still fit (UPGRADE=1: the newest
# allowed). uv, which writes it, is itself installed from requirements/uv.txt with hashes.
LOCK_TOOL    := $(VENV)/lock-tool
LOCK_COMPILE  = $(LOCK_TOOL)/bin/uv pip compile --quiet --universal --python-version 3.11 \
                --generate-hashes --custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade)
lock:
	test -x $(LOCK_TOOL)/bin/python || $(PYTHON) -m venv $(LOCK_TOOL)
	$(LOCK_TOOL)/bin/python -m pip install --quiet --require-hashes -r requirements/uv.txt
	$(LOCK_COMPILE) -o requirements/uv.txt requirements/uv.in
	$(LOCK_COMPILE) --extra dev -o $(LOCK) pyproject.toml requirements/build.in

run: $(STAMP)
	$(BIN)/abuse-desk serve

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The suites whose outcome depends on the date, run under libfaketime as if it were $(AT).
# The monotonic clock stays real; tests/faketime/sitecustomize.py works around libfaketime
# 0.9.10's EINVAL from Python's time.sleep in that mode.
AT          ?= 2026-12-31 23:40:00 UTC
TIME_SUITES ?= tests/workflow tests/classifier tests/web tests/ingest/test_importer.py \
               tests/ingest/test_store.py tests/casework tests/app/test_cli.py
test-at: $(STAMP)
	@command -v faketime >/dev/null || { echo "make test-at needs faketime (apt-get install faketime)" >&2; exit 2; }
	FAKETIME_DONT_FAKE_MONOTONIC=1 PYTHONPATH=tests/faketime faketime "$(AT)" \
	  $(BIN)/python -m pytest $(TIME_SUITES) $(PYTEST_ARGS)

# mypy does not follow setuptools' package-dir mapping (pyproject.toml), so lint lays the
# installed layout out as links under .venv/typecheck/abuse_desk and checks that.
STAGES := core ingest parsers classifier workflow casework web app
lint: $(STAMP)
	$(BIN)/ruff check .
	rm -rf $(VENV)/typecheck && mkdir -p $(VENV)/typecheck/abuse_desk
	for d in $(STAGES); do ln -s "$(CURDIR)/$$d" $(VENV)/typecheck/abuse_desk/$$d; done
	for f in abuse_desk/*; do ln -s "$(CURDIR)/$$f" $(VENV)/typecheck/abuse_desk/; done
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

accuracy: $(STAMP)
	$(BIN)/python bench/accuracy.py $(ACCURACY_ARGS)

clean:
	rm -rf $(VENV) var
