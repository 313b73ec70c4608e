# Two commands for a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m samples

test: $(STAMP)
	$(PY) -m pytest
	$(PY) -m ruff check reactive hosts samples tests
	$(PY) -m mypy reactive hosts

lint: $(STAMP)
	$(PY) -m ruff check reactive hosts samples tests

typecheck: $(STAMP)
	$(PY) -m mypy reactive hosts

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
