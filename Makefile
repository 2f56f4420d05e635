# Lumina: set-up, demo and tests. Every target creates .venv and installs the pinned set on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lumina-installed
# quiet set-up: pip's warnings (-qq) and setuptools' deprecation notices for editable installs are noise
PIP := PYTHONWARNINGS=ignore $(PY) -m pip install -qq --disable-pip-version-check -c constraints.txt

.PHONY: setup demo test test-fast lint clean

$(STAMP): pyproject.toml constraints.txt $(wildcard plugins/*/pyproject.toml)
	@echo "set-up: installing the pinned set into $(VENV) (first time: a few minutes)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@PYTHONWARNINGS=ignore $(PY) -m pip install -qq --disable-pip-version-check --upgrade pip
	@$(PIP) setuptools wheel
	@$(PIP) -e ".[all]" $(addprefix -e ,$(wildcard plugins/*/))
	@touch $(STAMP)
	@echo "set-up: done"

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/lumina train recipes/image/shapes_tiny.yaml
	$(VENV)/bin/lumina eval recipes/image/shapes_tiny.yaml

test: $(STAMP)
	$(PY) -m pytest -q --durations=15

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check lumina_core lumina_modalities plugins tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
