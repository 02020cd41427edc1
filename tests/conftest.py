import gc
import json
import os
import shutil
import tempfile
import time
import zlib

import jax
import jax.random as jr
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

# One XLA compilation cache for the whole run, fresh and empty at its start: a program
# compiled once (by any xdist worker, by a module before `jax.clear_caches()` below, or by
# a subprocess: verdict tables, README blocks, notebooks, the sharded suite) is loaded, not
# compiled again. Loading the same executable gives bitwise the same results. Nothing
# survives the run, so every run pays every compilation once (a fresh clone's cost).
# `JAX_COMPILATION_CACHE_DIR` set by the caller is used as it is and kept.
_CACHE_ENV = {
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.1",  # skip tiny op-by-op programs
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
}
_OWN_CACHE = "JAXMIN_TEST_OWNS_CACHE"

# The suite's programs are small, and its workers already fill the cores: each xdist
# worker runs on a core of its own (and its subprocesses there too), where small solves
# run 0.6-0.8x the time they take free to move between cores (`python -m
# benchmarks.kernels --threads`; README, "Many small solves on a multi-core CPU"). Set
# before the worker's first computation, which sizes XLA's thread pool.


def _pin_worker(config) -> None:
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    workers = int(config.workerinput.get("workercount", 0))
    index = config.workerinput.get("workerid", "").removeprefix("gw")
    if 0 < workers <= len(cores) and index.isdigit():
        # (modulo: a crashed worker's replacement gets the next id)
        os.sched_setaffinity(0, {cores[int(index) % len(cores)]})


def pytest_configure(config):
    if hasattr(config, "workerinput"):
        _pin_worker(config)
    if not hasattr(config, "workerinput") and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        # the controller (or a plain run): xdist workers and subprocesses inherit the env
        os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxmin-tests-xla-")
        os.environ[_OWN_CACHE] = str(os.getpid())  # (subprocesses inherit it: not theirs)
        for name, value in _CACHE_ENV.items():
            os.environ.setdefault(name, value)
    # this process may have imported jax before the env was set: its config from the env
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
        jax.config.update("jax_persistent_cache_min_compile_time_secs",
                          float(os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")))
        jax.config.update("jax_persistent_cache_min_entry_size_bytes",
                          int(os.environ.get("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")))


def pytest_unconfigure(config):
    if not hasattr(config, "workerinput") and os.environ.get(_OWN_CACHE) == str(os.getpid()):
        del os.environ[_OWN_CACHE]
        shutil.rmtree(os.environ.pop("JAX_COMPILATION_CACHE_DIR"), ignore_errors=True)


# Tests that run for tens of seconds each (a table of solves, a subprocess: verdict tables,
# the sharded suite, notebooks, README blocks, the docs site) start first, so the last
# tests of a run are short ones and `--dist worksteal` ends both workers together.
_LONG_FIRST = (
    "test_verdicts.py::test_float32_mgh_verdicts",
    "test_bfgs.py::test_float32_verdicts",
    "test_sqp_float32.py::test_hs_float32",  # (all the tests of a module fixture together,
    "test_sqp.py::test_hs_",  # at the front of one worker's queue: it is computed once)
    "test_sharding.py::test_sharded_suite",
    "test_notebooks.py::test_notebook_runs",
    "test_docs.py::",
    "test_readme.py::test_readme_block",
    "test_demo.py::",  # twelve large solves compiled in one test (~35 CPU-s)
)


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: not any(name in item.nodeid for name in _LONG_FIRST))  # stable


@pytest.fixture
def key(request):
    # deterministic per test, no global RNG
    return jr.key(zlib.crc32(request.node.name.encode()))


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    # each module compiles its own programs; releasing them between modules keeps a
    # long-lived xdist worker's compiled code (and XLA's memory) from piling up: a
    # worker that had compiled most of the suite segfaulted inside XLA's compiler
    yield
    jax.clear_caches()
    gc.collect()


# Where a test's time goes (issue 14): with `JAXMIN_TEST_PHASES=FILE` set, each test
# appends one JSON line to FILE: its wall time (setup, which includes module fixtures
# computed for it, call and teardown) and JAX's seconds of tracing, lowering and XLA
# compilation within it, by the event names of JAX's `/jax/core/compile/*` monitoring
# events (a subprocess's compilations are not counted, except that the sharded suite's
# pytest writes its own tests' lines). `python -m benchmarks.test_phases FILE` sums them
# by module and lists the tests that compile most.
_PHASES_FILE = os.environ.get("JAXMIN_TEST_PHASES")
if _PHASES_FILE:  # (the seconds per event, as `benchmarks.first_calls` collects them)
    from benchmarks.first_calls import _EVENTS as _PHASE_SECONDS
    from benchmarks.first_calls import _listen

    jax.monitoring.register_event_duration_secs_listener(_listen)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if not _PHASES_FILE:
        yield
        return
    before, start = dict(_PHASE_SECONDS), time.perf_counter()
    yield
    record = {"test": item.nodeid, "wall": round(time.perf_counter() - start, 3)}
    record.update({name: round(total - before.get(name, 0.0), 3) for name, total in _PHASE_SECONDS.items()
                   if total > before.get(name, 0.0)})
    with open(_PHASES_FILE, "a") as out:  # (one short line per write: workers may share FILE)
        out.write(json.dumps(record) + "\n")
