"""The test suite's time record (`JAXMIN_TEST_PHASES`, tests/conftest.py) and its
summary (`benchmarks.test_phases`)."""

import json
import os
import pathlib
import subprocess
import sys

from benchmarks.test_phases import by_module, load, report

TESTS = pathlib.Path(__file__).parent


def test_each_test_writes_its_wall_and_compile_seconds(tmp_path):
    record = tmp_path / "phases.jsonl"
    test = "tests/test_compiled.py::test_sizes_pick_tiny_small_or_default"
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-q", test],
                         cwd=TESTS.parent, env={**os.environ, "JAXMIN_TEST_PHASES": str(record)},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    (line,) = record.read_text().splitlines()
    raw = json.loads(line)
    assert raw["test"] == test and raw["wall"] > 0
    assert raw["backend_compile_duration"] > 0  # (its jnp.zeros are compiled, op by op)
    (loaded,) = load(str(record))
    assert loaded["compile"] == raw["backend_compile_duration"] and loaded["wall"] == raw["wall"]


def test_summary_sums_by_module_and_lists_the_longest_compiles(tmp_path):
    lines = [{"test": "tests/a.py::x", "wall": 2.0, "backend_compile_duration": 1.5},
             {"test": "tests/a.py::y", "wall": 1.0, "jaxpr_trace_duration": 0.25},
             {"test": "tests/b.py::z", "wall": 4.0, "backend_compile_duration": 0.5}]
    path = tmp_path / "phases.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    records = load(str(path))
    modules = by_module(records)
    assert list(modules) == ["tests/b.py", "tests/a.py"]  # the longest first
    assert modules["tests/a.py"]["wall"] == 3.0 and modules["tests/a.py"]["compile"] == 1.5
    assert modules["tests/a.py"]["trace"] == 0.25 and modules["tests/b.py"]["lower"] == 0.0
    text = report(records, top=2)
    assert text.startswith("3 tests, 7 s of test time: trace 4%, lower 0%, compile 29%.")
    longest = [line.split(" | ")[0] for line in text.splitlines()[-2:]]
    assert longest == ["| tests/a.py::x", "| tests/b.py::z"]
