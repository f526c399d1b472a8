# Two commands on a fresh machine with Python 3.11+ and git: `make demo` and `make test`.
# uv is bootstrapped into .venv-bootstrap with pip; everything else comes from uv.lock.
PYTHON ?= python3
BOOT := .venv-bootstrap
UV := $(BOOT)/bin/uv
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: demo test lint bench sync

$(UV):
	$(PYTHON) -m venv $(BOOT)
	$(BOOT)/bin/pip install --quiet --disable-pip-version-check uv

.venv/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --quiet --compile-bytecode
	touch $@

sync: .venv/.synced

demo: .venv/.synced
	$(UV) run --frozen testpilot demo

test: .venv/.synced
	$(UV) run --frozen pytest

lint: .venv/.synced
	$(UV) run --frozen ruff check .
	$(UV) run --frozen mypy

bench: .venv/.synced
	$(UV) run --frozen python bench/overhead.py
