# mlscale: `make demo` and `make test` set everything up themselves (idempotently) and then run.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-pyproject-sha256
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: demo lab test venv system bench export clean-state nbtest pytest gpu-wheels docs lint

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

## lab: JupyterLab on this project with the mlscale panel, on loopback; prints the URL with its token
LAB_PORT ?= 8888
lab: venv
	@token=$$($(PY) -c "import secrets; print(secrets.token_hex(16))"); \
	echo "== JupyterLab with the mlscale panel: http://127.0.0.1:$(LAB_PORT)/lab?token=$$token"; \
	MLSCALE_HOME="$(CURDIR)" $(VENV)/bin/jupyter lab --no-browser --ip=127.0.0.1 --port=$(LAB_PORT) \
	  --ServerApp.root_dir="$(CURDIR)" --IdentityProvider.token=$$token $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

## system: Debian packages the tests start for real (PostgreSQL, Redis, Chromium); skipped when present
system:
	@.ci/install-system.sh

## test: the notebook tests (every notebook executed once, by the docs build, which keeps their outputs for the site),
## then pytest (tests/test_docs.py checks that site instead of building another)
test: venv system
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) tools/build_docs.py --dest _docs --workers 2
	MLSCALE_DOCS_SITE="$(CURDIR)/_docs" $(PY) -m pytest $(PYTEST_ARGS)

## bench: the benchmark scripts, each printing ratios against the raw library
bench: venv
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

## export: regenerate mlscale_sdk/ from nbs/ (after editing notebooks)
export: venv
	$(VENV)/bin/nbdev-clean && $(VENV)/bin/nbdev-export

## lint: ruff over the generated library, the notebooks it comes from and the bench/tools scripts (also run by
## `make test`: tests/test_lint.py)
lint: venv
	$(VENV)/bin/ruff check mlscale_sdk nbs bench tools && $(VENV)/bin/ruff format --check nbs

## docs: the documentation site in _docs/, from nbs/ the nbdev way (notebooks executed, show_doc, Quarto when installed)
docs: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) tools/build_docs.py --dest _docs $(DOCS_ARGS)

## gpu-wheels: the wheels bench/gpu_check.py carries to a GPU machine without a registry: exactly those pinned in
## bench/gpu-requirements.txt, for CPython 3.12 on manylinux x86_64, into bench/gpu-wheels/ (git-ignored); fails if
## they and the working tree pass the 64 MiB that may travel (a dry run then lists them with their sizes)
GPU_WHEELS := bench/gpu-wheels
gpu-wheels:
	rm -rf $(GPU_WHEELS) && mkdir -p $(GPU_WHEELS)
	$(PYTHON) -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
	  --python-version 3.12 --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
	  -d $(GPU_WHEELS) -r bench/gpu-requirements.txt
	$(PYTHON) bench/gpu_check.py --dry-run --check-wheels --wheels $(GPU_WHEELS)
