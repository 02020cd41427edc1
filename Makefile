# Every target sets itself up from a fresh clone: `.venv` is created on demand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export OPENBLAS_NUM_THREADS := 1
export PYTHONHASHSEED := 0

.PHONY: demo test bench clean

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

$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[bench]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m jaxmin

# A worker that has compiled much of the suite has segfaulted inside XLA's compiler
# (jaxlib, not jaxmin; 1-2 tests in some full runs): such a test is run again in a
# fresh worker. Only crashes are rerun: a failing assertion fails at once.
test: $(VENV)/.test-installed
	$(PY) -m pytest -n 2 --reruns 2 --only-rerun "crashed" tests

bench: $(VENV)/.bench-installed
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
