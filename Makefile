# Baton developer commands. Every target installs what it needs on a fresh machine.
# VENV can point elsewhere, e.g. `make VENV=/tmp/v deps` to try a clean install.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.baton-installed

.DEFAULT_GOAL := help
.PHONY: help deps test-deps run reset test lint typecheck cfn-lint pytest bench package clean distclean browser

help:
	@echo "make run        local stack: moto + data plane + chalice local (see README); keeps its data"
	@echo "make reset      forget the local stack's data (.baton/state) and its Slack outbox file"
	@echo "make test       lint, typecheck, cfn-lint, pytest (installs Chromium with apt as root;"
	@echo "                BATON_SKIP_BROWSER=1 skips that and the browser tests)"
	@echo "make package    build/: the data-plane, app (SAM) and alarm templates for AWS, linted"
	@echo "make lint | typecheck | cfn-lint | pytest | bench | deps | clean | distclean"

# The stamp is newer than every dependency list once the install succeeded; pip only runs again
# when one of them changes (or the venv is gone).
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check -e . --no-deps
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" >/dev/null
	touch $@

deps test-deps: $(STAMP)

run: $(STAMP)
	$(PY) -m devstack

# Refused while a stack runs with the same directory (its last snapshot would bring the data back).
reset: $(STAMP)
	$(PY) -m devstack --reset

test: lint typecheck cfn-lint pytest

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy chalicelib baton devstack

# --include-checks I: informational findings (e.g. implicit retention) are fixed too.
cfn-lint: $(STAMP)
	$(BIN)/cfn-lint --include-checks I -- infra/*.yaml

# The AWS deployables, stage prod (README "Deploy to AWS"), in $(BUILD)/: data-plane.yaml and
# alarms.yaml (copies of infra/), and the app stack app/sam.json + app/deployment.zip from
# `chalice package`, merged with infra/app-overrides.yaml (wiring to the data plane's exports);
# all three are linted. Nothing here calls AWS.
# - chalice needs a region to package: us-east-1 unless AWS_DEFAULT_REGION is set.
# - app.py registers outbox_relay only when BATON_OUTBOX_STREAM_ARN is set at import: a
#   placeholder does it, and the merge template replaces it with the data plane's export.
# - the SNS and SQS handlers' topic and queue names follow BATON_STAGE (prod, from
#   .chalice/config.json), never a BATON_HANDOFF_TOPIC / BATON_RESCORE_QUEUE left in this shell.
# - with a YAML merge template chalice writes sam.yaml: it is converted to sam.json.
# - chalice zips app.py and chalicelib/ as they are on disk: it packages a staged copy without
#   __pycache__ (sharing chalice's dependency-layer cache in .chalice/deployments), so the zip holds
#   the sources only. The analyst package, baton/, is never in it.
BUILD ?= build
AWS_DEFAULT_REGION ?= us-east-1
PACKAGE_STAGE := prod
OUTBOX_STREAM_PLACEHOLDER := arn:aws:dynamodb:$(AWS_DEFAULT_REGION):000000000000:table/baton-$(PACKAGE_STAGE)-outbox/stream/PLACEHOLDER

package: $(STAMP)
	rm -rf $(BUILD)/app $(BUILD)/data-plane.yaml $(BUILD)/alarms.yaml $(BUILD)/src
	mkdir -p $(BUILD)
	cp infra/data-plane.yaml infra/alarms.yaml $(BUILD)/
	$(PY) -c 'import shutil, sys; [shutil.copytree(d, sys.argv[1] + "/" + d, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "deployments")) for d in (".chalice", "chalicelib")]' $(BUILD)/src
	cp app.py requirements.txt $(BUILD)/src/
	mkdir -p .chalice/deployments && ln -s $(CURDIR)/.chalice/deployments $(BUILD)/src/.chalice/deployments
	env -u BATON_HANDOFF_TOPIC -u BATON_RESCORE_QUEUE -u AWS_ENDPOINT_URL \
		AWS_DEFAULT_REGION=$(AWS_DEFAULT_REGION) BATON_OUTBOX_STREAM_ARN=$(OUTBOX_STREAM_PLACEHOLDER) \
		$(BIN)/chalice --project-dir $(BUILD)/src package --stage $(PACKAGE_STAGE) \
		--merge-template $(CURDIR)/infra/app-overrides.yaml $(abspath $(BUILD))/app
	$(PY) -c 'import json, sys, yaml; from pathlib import Path as P; P(sys.argv[2]).write_text(json.dumps(yaml.safe_load(P(sys.argv[1]).read_text()), indent=2))' \
		$(BUILD)/app/sam.yaml $(BUILD)/app/sam.json
	rm $(BUILD)/app/sam.yaml
	$(BIN)/cfn-lint --include-checks I -- $(BUILD)/data-plane.yaml $(BUILD)/alarms.yaml $(BUILD)/app/sam.json
	rm -rf $(BUILD)/src
	@echo "built: $(BUILD)/data-plane.yaml $(BUILD)/alarms.yaml $(BUILD)/app/sam.json + deployment.zip"

# System Chromium for the browser tests (tests/e2e); Playwright never downloads a browser.
# As root with apt-get, a missing Chromium is installed (the distro package); BATON_SKIP_BROWSER=1
# installs nothing and the browser tests skip.
browser:
	@if [ -n "$$BATON_SKIP_BROWSER" ] && [ "$$BATON_SKIP_BROWSER" != 0 ]; then \
		echo "BATON_SKIP_BROWSER is set: no Chromium install, browser tests skip"; \
	elif [ ! -x /usr/bin/chromium ]; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			echo "installing Chromium with apt-get for the browser tests (BATON_SKIP_BROWSER=1 skips them)"; \
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

# The public X Education lead export (docs/datasets.md): downloaded into data/ (git-ignored) and
# checked against its recorded sha256, never committed.
XEDU_URL := https://raw.githubusercontent.com/KeerthanaDS1994/LEAD-SCORING-CASE-STUDY---Keerthana-DS/21ddd2fcab13a907eac4425a4e5b806c5e4869e3/Leads.csv
XEDU_SHA256 := 4031a25430787dc4ec47bac0a3acb3a9140772b101ca1979e2f7aae806475ee8

data/x-education/Leads.csv:
	mkdir -p $(@D)
	curl -fsSL -o $@.part "$(XEDU_URL)"
	echo "$(XEDU_SHA256)  $@.part" | sha256sum -c -
	mv $@.part $@

# .baton/ (the local stack's kept data) stays: `make reset` is how it goes.
clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
	find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
