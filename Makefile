# The only entry points a newcomer needs. Each builds .venv from a bare python3, strictly
# from the committed lock files in locks/ (make lock is the only command that changes them).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test check lint bench docs sysdeps clean venv airflow2 lock mutation

# pip's hash mode installs exactly the locked files; the three projects follow, editable,
# with --no-deps (their dependencies are all in the lock) and no build isolation (so the
# locked setuptools builds them, not whatever is newest).
PIP_LOCKED := -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps
PIP_EDITABLE := -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation

venv: $(STAMP)

$(STAMP): locks/main.txt pyproject.toml airflow_provider/pyproject.toml salesforce_bridge/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python $(PIP_LOCKED) -r locks/main.txt
	$(BIN)/python $(PIP_EDITABLE) -e . -e airflow_provider -e salesforce_bridge
	touch $(STAMP)

# Recompile every lock from the pyprojects (needs PyPI). Airflow's constraints files are
# applied when reachable; set AIRFLOW_CONSTRAINTS= (empty) to skip them.
lock: $(STAMP)
	$(BIN)/python locks/lock.py

# Airflow 2.11 in its own virtualenv (it cannot share one with Airflow 3), for the
# Airflow provider's compatibility test; without PyPI that test skips.
AIRFLOW2 := $(VENV)/airflow2/.installed

airflow2: $(AIRFLOW2)

$(AIRFLOW2): $(STAMP) locks/airflow2.txt
	test -x $(VENV)/airflow2/bin/python || $(PYTHON) -m venv $(VENV)/airflow2
	$(VENV)/airflow2/bin/python $(PIP_LOCKED) -r locks/airflow2.txt
	$(VENV)/airflow2/bin/python $(PIP_EDITABLE) -e . -e airflow_provider
	touch $@

# Debian programs some tests need: PostgreSQL (the inbox) and php-cli (the oracle
# for Kudosity's V1 signatures). Installed when running as root, as in CI;
# elsewhere those tests skip and say what to install.
sysdeps:
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  need=""; \
	  command -v php >/dev/null || need="$$need php-cli"; \
	  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null || need="$$need postgresql"; \
	  if [ -n "$$need" ]; then \
	    echo "installing Debian packages:$$need"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$need >/dev/null) \
	      || echo "warning: could not install$$need; the tests that need them will be skipped"; \
	  fi; \
	fi

# The Salesforce CLI (sf) and the Node 22 it needs, both from npm and pinned by the committed
# package-lock.json (npm ci), into salesforce_bridge/sfcli/node_modules (git-ignored), so the
# metadata test converts the DX source with the real sf, offline. Without npm that test skips.
SFCLI := salesforce_bridge/sfcli/node_modules/.installed

sfcli: $(SFCLI)

$(SFCLI): salesforce_bridge/sfcli/package.json salesforce_bridge/sfcli/package-lock.json
	@if command -v npm >/dev/null; then \
	  cd salesforce_bridge/sfcli && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "warning: npm not found; the Salesforce CLI metadata test will be skipped"; fi

# The core campaign, then each integration's own demo, all offline on loopback.
DEMOS := smsrelay.demo smsrelay.receiver_demo action.demo smsrelay_airflow.demo smsrelay_salesforce.demo

demo: $(STAMP)
	@for m in $(DEMOS); do \
	  if $(BIN)/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$$m') is None)" 2>/dev/null; then \
	    echo; echo "######## python -m $$m"; $(BIN)/python -m $$m || exit 1; \
	  fi; \
	done

test: $(STAMP) $(AIRFLOW2) sysdeps sfcli lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# The edit loop: lint plus the unit tests, in well under a minute.
check: lint
	$(BIN)/python -m pytest -n 2 -q tests/unit $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	@if [ -f action.yml ]; then $(BIN)/check-jsonschema --builtin-schema vendor.github-actions action.yml; fi
	@if [ -f Dockerfile ]; then $(BIN)/hadolint Dockerfile; fi
	@if [ -d .github/workflows ]; then $(BIN)/zizmor --offline --min-severity medium .github/workflows; fi
	@if [ -d .github/workflows ]; then $(BIN)/actionlint .github/workflows/*.yml; fi

# Mutation testing of the core's pure modules: a score per module (mutation/run.py).
# Minutes, not seconds, so it is not part of make test.
mutation: $(STAMP)
	$(BIN)/python mutation/run.py --fail-under 90

bench: $(STAMP) sysdeps
	$(BIN)/python -m bench

docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache
