# Two commands for a fresh clone: `make run` and `make test`.
#
# `make test` installs what the tests need, each step only when it is missing or stale:
# the package with its dev extra in .venv, Azurite (npm ci from tests/services'
# lockfile), Debian's chromium (apt-get, as root or through sudo); then pytest, whose
# fixtures start and stop the local servers, then ruff, mypy and, once there is an AWS
# template, cfn-lint. Every install step prints how long it took.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SERVICES := tests/services
NPM_STAMP := $(SERVICES)/node_modules/.installed
CHROMIUM := /usr/bin/chromium
AWS_TEMPLATE := infra/aws/template.yaml
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium

# $(call timed,STEP,COMMAND): runs COMMAND in one shell, then prints the wall time of STEP
define timed
@s=$$(date +%s.%N); $(2); rc=$$?; \
awk -v s="$$s" -v e="$$(date +%s.%N)" -v rc="$$rc" \
  'BEGIN { printf "make: %s took %.1f s%s\n", "$(1)", e - s, rc ? " (failed)" : "" }'; \
exit $$rc
endef

.PHONY: run test deps browser lint typecheck clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(call timed,install: python packages,\
	  $(PY) -m pip install --quiet --upgrade pip && \
	  $(PY) -m pip install --quiet -e '.[dev]' && touch $(STAMP))

# Azurite, pinned by the lockfile; reinstalled only when the lockfile changes
$(NPM_STAMP): $(SERVICES)/package.json $(SERVICES)/package-lock.json
	$(call timed,install: azurite (npm ci),\
	  if command -v npm >/dev/null 2>&1; then \
	    npm ci --prefix $(SERVICES) && touch $(NPM_STAMP); \
	  else echo "make: WARNING: npm not found (Azurite needs node 20+ and npm): its tests will fail"; fi)

# Debian's chromium for the browser tests (never a browser downloaded by a test tool)
browser:
	$(call timed,install: chromium,\
	  if [ -x $(CHROMIUM) ]; then echo "make: $(CHROMIUM) is present"; \
	  elif ! { [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1; }; then \
	    echo "make: WARNING: $(CHROMIUM) missing and neither root nor sudo: browser tests will fail"; \
	  else $(APT_INSTALL) || { $(SUDO) apt-get update && $(APT_INSTALL); } \
	    || echo "make: WARNING: chromium could not be installed: browser tests will fail"; fi)

deps: $(STAMP) $(NPM_STAMP) browser

run: $(STAMP)
	$(PY) -m samples

test: deps
	$(call timed,pytest,$(PY) -m pytest)
	$(PY) -m ruff check reactive hosts samples tests
	$(PY) -m mypy reactive hosts tests/services tests/conftest.py
	@if [ -f $(AWS_TEMPLATE) ]; then echo "$(VENV)/bin/cfn-lint $(AWS_TEMPLATE)"; \
	  $(VENV)/bin/cfn-lint $(AWS_TEMPLATE); fi

lint: $(STAMP)
	$(PY) -m ruff check reactive hosts samples tests

typecheck: $(STAMP)
	$(PY) -m mypy reactive hosts tests/services tests/conftest.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info .services $(SERVICES)/node_modules
