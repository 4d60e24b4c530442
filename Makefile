# Baton developer commands. Every target installs what it needs on a fresh machine.
# VENV can point elsewhere, e.g. `make VENV=/tmp/v deps` to try a clean install.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.baton-installed

.DEFAULT_GOAL := help
.PHONY: help deps test-deps run test lint typecheck cfn-lint pytest bench clean distclean browser

help:
	@echo "make run        local stack: moto + data plane + chalice local (see README)"
	@echo "make test       lint, typecheck, cfn-lint, pytest"
	@echo "make lint | typecheck | cfn-lint | pytest | bench | deps | clean | distclean"

# The stamp is newer than every dependency list once the install succeeded; pip only runs again
# when one of them changes (or the venv is gone).
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check -e . --no-deps
	touch $@

deps test-deps: $(STAMP)

run: $(STAMP)
	$(PY) -m devstack

test: lint typecheck cfn-lint pytest

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy chalicelib devstack

# --include-checks I: informational findings (e.g. implicit retention) are fixed too.
cfn-lint: $(STAMP)
	$(BIN)/cfn-lint --include-checks I -- infra/*.yaml

# System Chromium for the browser tests (tests/e2e); Playwright never downloads a browser.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else echo "no /usr/bin/chromium (needs apt-get as root): browser tests will skip"; fi; \
	fi

# Parallel only where pytest-xdist is installed; it is not a pinned dependency.
pytest: $(STAMP) browser
	@if $(PY) -c 'import xdist' 2>/dev/null; then \
		echo "$(PY) -m pytest -n auto"; $(PY) -m pytest -n auto; \
	else \
		echo "$(PY) -m pytest"; $(PY) -m pytest; \
	fi

bench: $(STAMP)
	@set -e; for script in bench/*.py; do \
		[ -e "$$script" ] || continue; \
		echo "== $$script"; $(PY) "$$script"; \
	done

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info .baton
	find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
