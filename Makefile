# mlscale: `make demo` and `make test` set everything up themselves (idempotently) and then run.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-pyproject-sha256
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: demo test venv system bench export clean-state nbtest pytest

## venv: create/refresh .venv; reinstalls only when pyproject.toml's content changed since the last install
## (a content hash, not the file time: nbdev rewrites pyproject.toml without changing it)
venv:
	@h=$$(sha256sum pyproject.toml | cut -d' ' -f1); \
	if [ -x $(PY) ] && [ "$$(cat $(STAMP) 2>/dev/null)" = "$$h" ]; then exit 0; fi; \
	test -x $(PY) || $(PYTHON) -m venv $(VENV); \
	echo "== installing mlscale-sdk and its dependencies into $(VENV) (first time: a few minutes)"; \
	$(PIP) torch==2.13.0 && $(PIP) -e ".[dev]" && echo "$$h" > $(STAMP)

## demo: start the auto cluster, generate data, features, distributed XGBoost, MLflow, promote champion
demo: venv
	$(VENV)/bin/mlscale demo $(DEMO_ARGS)

## system: Debian packages the tests start for real (PostgreSQL, Redis, Chromium); skipped when present
system:
	@.ci/install-system.sh

## test: notebooks in step with the library, notebook tests (nbdev-test), then pytest
test: venv system
	$(VENV)/bin/nbdev-test --n-workers 1 --timing
	$(PY) -m pytest $(PYTEST_ARGS)

## bench: the benchmark scripts, each printing ratios against the raw library
bench: venv
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

## export: regenerate mlscale_sdk/ from nbs/ (after editing notebooks)
export: venv
	$(VENV)/bin/nbdev-clean && $(VENV)/bin/nbdev-export
