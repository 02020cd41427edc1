# Every target sets itself up from a fresh clone: `.venv` is created on demand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export OPENBLAS_NUM_THREADS := 1
export PYTHONHASHSEED := 0

.PHONY: demo test test-all bench docs clean

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	touch $@

$(VENV)/.installed: $(VENV)/.created pyproject.toml
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test]'
	touch $@

$(VENV)/.docs-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[docs]'
	touch $@

$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[bench]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m jaxmin

# tests/test_docs.py builds the site, so the test environment has the docs extra too.
# `make test` runs the whole suite but the tests marked `slow`: the MGH table with the
# three non-default line searches on the dimensions where the searches agree
# (tests/test_minimize.py) and MoreThuente against SciPy's L-BFGS-B; `make test-all`
# (what CI runs) runs those too. Both run every notebook (tests/test_notebooks.py).
# Two workers, longest tests first, idle workers steal queued tests (tests/conftest.py);
# one XLA compilation cache for the run, empty at its start; each worker on a core of its
# own, where small solves run faster (tests/conftest.py).
# A worker that has compiled much of the suite has segfaulted inside XLA's compiler
# (jaxlib, not jaxmin; 1-2 tests in some full runs): such a test is run again in a
# fresh worker. Only crashes are rerun: a failing assertion fails at once.
PYTEST := $(PY) -m pytest -n 2 --dist worksteal --reruns 2 --only-rerun "crashed"
test: $(VENV)/.test-installed $(VENV)/.docs-installed
	$(PYTEST) -m "not slow" tests

test-all: $(VENV)/.test-installed $(VENV)/.docs-installed
	$(PYTEST) tests

# The site (mkdocs.yml, docs/): API reference from the docstrings, the README's sections,
# the notebooks with their saved outputs, the benchmark results. A warning fails it.
docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: $(VENV)/.bench-installed
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis site
