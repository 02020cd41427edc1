"""The compile options of a direct call, chosen by the problem's size: the unknowns, and
the numbers in its arrays, those passed as arguments and those its functions hold."""

import jax.numpy as jnp
import numpy as np
import pytest

import jaxmin as jm
from jaxmin import _compiled
from problems import rosenbrock

_PROGRAM = _compiled.Program(default="default", small="small", tiny="tiny")
_GLOBAL_DATA = np.ones(100_000)


def _pick(x0, dynamic=(), functions=()):
    return _compiled._for_size(_PROGRAM, x0, list(dynamic), tuple(functions))


def _uses_global(x):
    return jnp.sum(x) + jnp.sum(_GLOBAL_DATA)


def test_sizes_pick_tiny_small_or_default():
    assert _pick(jnp.zeros(_compiled.TINY_PROBLEM)) == "tiny"
    assert _pick(jnp.zeros(_compiled.TINY_PROBLEM + 1)) == "small"
    assert _pick(jnp.zeros(_compiled.SMALL_PROBLEM + 1)) == "default"
    assert _pick(jnp.zeros(3), [np.ones(_compiled.TINY_DATA)]) == "tiny"
    assert _pick(jnp.zeros(3), [np.ones(_compiled.TINY_DATA + 1)]) == "small"
    assert _pick(jnp.zeros(3), [np.ones(_compiled.SMALL_DATA + 1)]) == "default"
    # a pytree x0 counts all its leaves
    assert _pick({"a": jnp.zeros(10), "b": jnp.zeros(10)}) == "small"


def test_data_a_function_holds_counts():
    data = np.ones(5000)
    closure = lambda x: jnp.sum(x) + jnp.sum(data)  # noqa: E731
    assert _pick(jnp.zeros(3), functions=[closure]) == "small"
    assert _pick(jnp.zeros(3), functions=[_uses_global]) == "default"
    # scalars held are not data
    lam = 0.5
    assert _pick(jnp.zeros(3), functions=[lambda x: lam * jnp.sum(x)]) == "tiny"


# PjRt's CPU client runs a program in the calling thread only where XLA's cost analysis
# estimates it below 1000 flops; every call of a larger one is handed to a thread pool,
# 0.05-0.15 ms on a 2-core machine: half the time of a whole L-BFGS solve at n = 2.
# The estimate counts each operation of the program once, loop bodies and fused
# duplicates included, so a tiny problem's solve stays under it only while the program
# stays small (benchmarks/README.md, "Steady time of small problems").
_INLINE_FLOPS = 1000


def _direct_call_flops(monkeypatch, solver, x0) -> float:
    """XLA's flop estimate of the program a direct `minimize` call runs."""
    seen = []
    pick = _compiled._for_size

    def spy(program, x0, dynamic, static_leaves):
        chosen = pick(program, x0, dynamic, static_leaves)

        def call(static, dynamic, max_steps):
            analysis = chosen.lower(static, dynamic, max_steps).compile().cost_analysis()
            seen.append((analysis[0] if isinstance(analysis, list) else analysis)["flops"])
            return chosen(static, dynamic, max_steps)

        return call

    monkeypatch.setattr(_compiled, "_for_size", spy)
    sol = jm.minimize(rosenbrock, x0, solver)
    assert bool(sol.success)
    return seen[0]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("solver", [jm.LBFGS(), jm.BFGS(), jm.NewtonCG()], ids=["LBFGS", "BFGS", "NewtonCG"])
def test_a_tiny_solve_runs_in_the_calling_thread(monkeypatch, solver, dtype):
    flops = _direct_call_flops(monkeypatch, solver, jnp.array([-1.2, 1.0], dtype))
    assert flops < _INLINE_FLOPS, (
        f"{type(solver).__name__}'s program for Rosenbrock n = 2 is estimated at {flops:.0f} "
        f"flops: at {_INLINE_FLOPS} or more, every call is dispatched to a thread pool")
