# volact: build, test and demo entry points.
#
#   make test        venv + system deps + ruff + mypy + pytest (PYTEST_ARGS="-k dns -x")
#   make demo        run the end-to-end demo
#   make bench       run the benchmarks (bench/run.py)
#   make deps        install BIND 9, PostgreSQL, Chromium, promtool when root (else say how)
#
# Two installs into one venv, each (re)done whenever pyproject.toml changes: `make demo`
# and `make bench` need every role (volact[all]); `make test`, `make lint` and
# `make typecheck` add the test tools (volact[dev]: pytest, mypy, ruff, schemathesis).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# One stamp per install: the run stamp says volact[all] is in, the dev stamp volact[dev].
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
LINT_PATHS := $(wildcard src tests bench)
PYTEST_ARGS ?=
DEMO_ARGS ?=
BENCH_ARGS ?=
# When set, `make pytest` writes pytest's exit status here (used by .ci/run to tell
# "no tests collected" (5) from a failure, which make itself reports as 2).
PYTEST_STATUS_FILE ?=
APT_GET := DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600

.PHONY: help venv deps demo test lint typecheck pytest bench clean distclean

help:
	@echo "targets: test demo bench deps lint typecheck pytest venv clean distclean"
	@echo "  make test PYTEST_ARGS='-k dns -x'   pass options to pytest"

venv: $(DEV_STAMP)

# The interpreter and pip, made once (installing python3-venv when root and missing).
$(BIN)/pip:
	@if [ ! -x $(BIN)/python ] || [ ! -x $(BIN)/pip ]; then \
	  rm -rf $(VENV); \
	  if ! $(PYTHON) -m venv $(VENV); then \
	    rm -rf $(VENV); \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      echo "venv: installing python3-venv"; \
	      $(APT_GET) update && $(APT_GET) install -y python3-venv; \
	      $(PYTHON) -m venv $(VENV); \
	    else \
	      echo "venv: '$(PYTHON) -m venv' failed; install python3-venv (apt-get install python3-venv)" >&2; \
	      exit 1; \
	    fi; \
	  fi; \
	fi

$(RUN_STAMP): pyproject.toml | $(BIN)/pip
	$(BIN)/pip install --disable-pip-version-check -q -e '.[all]'
	@touch $@

# volact[dev] includes volact[all], so it stands for the run install as well.
$(DEV_STAMP): pyproject.toml | $(BIN)/pip
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	@touch $@ $(RUN_STAMP)

# System programs the test suite runs for real: BIND 9 (named), PostgreSQL, Chromium +
# chromedriver (console browser tests) and promtool (alerting rules). The
# tests start their own servers; .ci/apt-install leaves the packages' services
# stopped and disabled at boot, so the machine is as it was apart from the packages.
deps:
	@missing=""; \
	if ! command -v named >/dev/null && [ ! -x /usr/sbin/named ]; then \
	  missing="$$missing bind9 bind9-dnsutils"; \
	fi; \
	pg=no; \
	if command -v initdb >/dev/null && command -v postgres >/dev/null; then pg=yes; fi; \
	for d in /usr/lib/postgresql/*/bin; do \
	  if [ -x "$$d/initdb" ] && [ -x "$$d/postgres" ]; then pg=yes; fi; \
	done; \
	if [ $$pg = no ]; then missing="$$missing postgresql"; fi; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	if [ -z "$$missing" ]; then \
	  echo "deps: BIND 9, PostgreSQL, Chromium and promtool are installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "deps: installing$$missing (no service started or enabled at boot)"; \
	  .ci/apt-install $$missing; \
	else \
	  echo "deps: missing$$missing; tests that need them will be skipped (failed under CI=true)."; \
	  echo "deps: install with: sudo apt-get install$$missing"; \
	fi

demo: $(RUN_STAMP)
	$(BIN)/volact demo $(DEMO_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check $(LINT_PATHS)

# mypy strict on the package (files from pyproject.toml), and on the test services.
typecheck: $(DEV_STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --strict tests/services.py tests/conftest.py

pytest: $(DEV_STAMP) deps
	@rc=0; $(BIN)/python -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ -n "$(PYTEST_STATUS_FILE)" ]; then echo $$rc > "$(PYTEST_STATUS_FILE)"; fi; \
	if [ $$rc = 5 ]; then echo "make: pytest collected no tests (exit 5)" >&2; fi; \
	exit $$rc

test: $(DEV_STAMP) deps lint typecheck pytest

bench: $(RUN_STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist src/*.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
