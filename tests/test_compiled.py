"""The compile options of a direct call, chosen by the problem's size: the unknowns, and
the numbers in its arrays, those passed as arguments and those its functions hold."""

import jax
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



def test_eager_jvp_and_vmap_compile_on_their_own_and_a_batch_is_seen():
    # JAX re-binds a jitted solve under eager `jvp`/`jacfwd`/`vmap` one level up, as a
    # top-level program (compiler options allowed); `jit` and the linearisation of
    # `grad`/`jacrev` stage it into the caller's program (options refused)
    seen = {}

    def probe(name):
        def f(x, y):
            seen[name] = (_compiled._compiled_on_its_own(), _compiled._batched(x), _compiled._batched(y))
            return jnp.sum(x**2) * y
        return f

    x, y = jnp.zeros((8, 3)), jnp.asarray(2.0)
    jax.vmap(probe("vmap"), (0, None))(x, y)
    jax.jvp(probe("jvp"), (x, y), (x, y))
    jax.jacfwd(probe("jacfwd"))(x[0], y)  # (a vmap of jvp over the tangents: x is not a batch)
    jax.vmap(jax.jacfwd(probe("vmap-jacfwd")), (0, None))(x, y)
    jax.jit(probe("jit"))(x, y)
    jax.jit(jax.vmap(probe("jit-vmap"), (0, None)))(x, y)
    jax.vmap(jax.jit(probe("vmap-jit")), (0, None))(x, y)
    jax.grad(probe("grad"))(x, y)
    jax.jacrev(probe("jacrev"))(x[0], y)
    assert seen == {"vmap": (True, True, False), "jvp": (True, False, False), "jacfwd": (True, False, False),
                    "vmap-jacfwd": (True, True, False), "jit": (False, False, False),
                    "jit-vmap": (False, True, False), "vmap-jit": (False, False, False),
                    "grad": (False, False, False), "jacrev": (False, False, False)}


def test_a_solve_under_eager_jacfwd_takes_the_small_problem_options_and_a_batch_the_default(monkeypatch):
    chosen = []
    pick = _compiled._for_size

    def spy(program, *rest):
        out = pick(program, *rest)
        chosen.append(next(name for name in program._fields if getattr(program, name) is out))
        return out

    monkeypatch.setattr(_compiled, "_for_size", spy)
    solve = lambda a: jm.minimize(lambda x, a: jnp.sum((x - a) ** 2), jnp.zeros(2), jm.LBFGS(), args=(a,)).x  # noqa: E731
    np.testing.assert_allclose(jax.jacfwd(solve)(jnp.array([1.0, 2.0])), np.eye(2), rtol=1e-10)
    np.testing.assert_allclose(jax.jvp(solve, (jnp.ones(2),), (jnp.ones(2),))[1], np.ones(2), rtol=1e-10)
    np.testing.assert_allclose(jax.vmap(solve)(jnp.ones((3, 2))), np.ones((3, 2)), rtol=1e-10)
    np.testing.assert_allclose(jax.grad(lambda a: solve(a).sum())(jnp.ones(2)), np.ones(2), rtol=1e-10)
    assert chosen == ["tiny", "tiny", "default", "default"]

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
