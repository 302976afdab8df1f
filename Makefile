# The two set-up commands of README.md: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
UV     := $(VENV)/bin/uv pip install -q --python $(PY)

.PHONY: demo demo-image test test-quick lint install install-test bench clean

# uv installs (seconds where pip takes minutes); pip only bootstraps it into the venv.
# ibm-schematics and python-terraform ship only as old sdists whose setup.py needs
# setuptools<70 and wheel: build them without isolation before the rest.
$(VENV)/.sdists:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install "uv>=0.4"
	$(UV) "setuptools<70" wheel
	$(UV) --no-build-isolation "ibm-schematics==1.1.0" "python-terraform==0.10.1"
	touch $@

$(VENV)/.installed: $(VENV)/.sdists pyproject.toml
	$(UV) -e ".[aws,ibm,cli,workloads]"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(UV) -e ".[aws,ibm,cli,workloads,test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed
	$(VENV)/bin/ephemera demo

# once: a prepared image of the demo's workload in your Ephemera home; `make demo` then starts from it
demo-image: $(VENV)/.installed
	$(VENV)/bin/ephemera image build --demo

# JOBS pytest-xdist workers: most tests wait on processes, servers and installs, so
# three share two cores well; tests that share a session's VMs run on one worker
JOBS ?= 3
test: $(VENV)/.installed-test
	$(PY) -m pytest -n $(JOBS) --dist loadgroup --durations=25 $(PYTEST_ARGS)

# the inner loop: everything but real applies, agent processes, fresh venvs and load
test-quick: $(VENV)/.installed-test
	$(PY) -m pytest -m "not slow" -n $(JOBS) --dist loadgroup $(PYTEST_ARGS)

# the type checker (the core: no error; elsewhere tests/typecheck_ratchet.json), the linter and the formatter
lint: $(VENV)/.installed-test
	$(VENV)/bin/mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

bench: $(VENV)/.installed-test
	$(PY) bench/bridge.py

clean:
	rm -rf $(VENV) build *.egg-info
