"""Warm starts (`minimize(..., warm_start=sol)`): exact resumption, refreshed memory on a
changed problem, derivatives as a cold solve's, and checkpoints on disk."""

import os
import subprocess
import sys
import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmin as jm


def _rosenbrock(x, a):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (a - x[:-1]) ** 2)


def _rosenbrock_tree(t, a):
    return _rosenbrock(jnp.concatenate([t["u"], t["v"]]), a)


_X0 = jnp.zeros(8)
_SOLVERS = {
    "LBFGS": jm.LBFGS(),
    "BFGS": jm.BFGS(),
    "NewtonCG": jm.NewtonCG(),
    "GradientDescent": jm.GradientDescent(1e-3),
    "OptimisticGradient": jm.OptimisticGradient(1e-3, 1e-3),
    "Fromage": jm.Fromage(1e-2),
}


@pytest.mark.parametrize("name", list(_SOLVERS))
def test_resuming_reproduces_the_uninterrupted_solve(name):
    solver = _SOLVERS[name]
    full = jm.minimize(_rosenbrock, _X0, solver, args=(1.0,), max_steps=40)
    first = jm.minimize(_rosenbrock, _X0, solver, args=(1.0,), max_steps=15)
    rest = jm.minimize(_rosenbrock, first.x, solver, args=(1.0,), max_steps=25, warm_start=first)
    np.testing.assert_array_equal(rest.x, full.x)
    for field in ("num_steps", "num_fun_evals", "num_hvp_evals", "status", "reason"):
        assert int(getattr(rest, field)) == int(getattr(full, field)), field


def test_resuming_in_chunks_under_jit():
    solver = jm.LBFGS()
    # every call under `jit`, so all are compiled alike (a direct call of a small problem
    # is compiled with other XLA options, `_minimize.SMALL_PROBLEM`, and may round the
    # last bit differently)
    full = jax.jit(lambda x0: jm.minimize(_rosenbrock, x0, solver, args=(1.0,), max_steps=60))(_X0)
    resume = jax.jit(lambda sol: jm.minimize(_rosenbrock, sol.x, solver, args=(1.0,), max_steps=10,
                                             warm_start=sol))
    sol = jax.jit(lambda x0: jm.minimize(_rosenbrock, x0, solver, args=(1.0,), max_steps=10))(_X0)
    for _ in range(5):
        sol = resume(sol)
    np.testing.assert_array_equal(sol.x, full.x)
    assert int(sol.num_steps) == int(full.num_steps) and int(sol.num_fun_evals) == int(full.num_fun_evals)


_D = jnp.logspace(0.0, 3.0, 8)
_C = jnp.linspace(-1.0, 1.0, 8)


def _valley(x, a):
    # minimiser a * _C (closed form); curvatures 1..1000, so the memory matters
    r = x - a * _C
    return 0.5 * jnp.sum(_D * r**2) + 0.25 * jnp.sum(r**4)


@pytest.mark.parametrize("name", ["LBFGS", "BFGS"])
def test_warm_start_on_changed_args_solves_the_new_problem_with_fewer_evaluations(name):
    # a continuation in the parameter a, as the peers restart it: from the previous x
    solver = _SOLVERS[name]
    previous = jm.minimize(_valley, _X0, solver, args=(1.0,))
    cold = jm.minimize(_valley, previous.x, solver, args=(1.1,))
    warm = jm.minimize(_valley, previous.x, solver, args=(1.1,), warm_start=previous)
    assert bool(warm.success) and bool(cold.success)
    np.testing.assert_allclose(warm.x, 1.1 * _C, rtol=1e-5, atol=1e-6)
    warm_evals = int(warm.num_fun_evals) - int(previous.num_fun_evals)
    assert warm_evals < int(cold.num_fun_evals)


def test_derivatives_are_a_cold_solves_and_zero_in_the_warm_start():
    solver = jm.LBFGS(gtol=1e-8)
    previous = jm.minimize(_rosenbrock, _X0, solver, args=(0.9,))

    def x_sum(a, warm):
        sol = jm.minimize(_rosenbrock, previous.x, solver, args=(a,), warm_start=warm)
        return sol.x.sum()

    cold = jax.grad(x_sum)(0.95, None)
    warm, d_previous = eqx.filter_grad(lambda p: x_sum(*p))((jnp.asarray(0.95), previous))
    np.testing.assert_allclose(warm, cold, rtol=1e-5)
    assert all(float(jnp.max(jnp.abs(leaf))) == 0.0 for leaf in jax.tree.leaves(d_previous))


def test_warm_start_under_vmap():
    solver = jm.LBFGS()
    a = jnp.array([0.8, 1.0, 1.2])
    first = jax.vmap(lambda a: jm.minimize(_rosenbrock, _X0, solver, args=(a,), max_steps=12))(a)
    rest = jax.vmap(lambda a, s: jm.minimize(_rosenbrock, s.x, solver, args=(a,), warm_start=s))(a, first)
    full = jax.vmap(lambda a: jm.minimize(_rosenbrock, _X0, solver, args=(a,)))(a)
    np.testing.assert_array_equal(rest.x, full.x)
    np.testing.assert_array_equal(rest.num_steps, full.num_steps)


def test_incompatible_warm_starts_are_refused():
    sol = jm.minimize(_rosenbrock, _X0, jm.LBFGS(), args=(1.0,), max_steps=3)
    with pytest.raises(ValueError, match="cannot continue"):
        jm.minimize(_rosenbrock, _X0, jm.BFGS(), args=(1.0,), warm_start=sol)
    with pytest.raises(ValueError, match="cannot continue"):
        jm.minimize(_rosenbrock, jnp.zeros(9), jm.LBFGS(), args=(1.0,), warm_start=sol)
    with pytest.raises(TypeError, match="warm_start"):
        jm.minimize(_rosenbrock, _X0, jm.LBFGS(), args=(1.0,), warm_start=sol.x)


_CHECKPOINT_SCRIPT = textwrap.dedent("""
    import sys
    import equinox as eqx, jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)  # as the test suite (conftest.py)
    import jaxmin as jm
    from test_warm_start import _rosenbrock_tree
    x0 = {"u": jnp.zeros(3), "v": jnp.zeros(2)}
    solve = lambda x0, m, warm=None: jm.minimize(_rosenbrock_tree, x0, jm.LBFGS(), args=(1.0,),
                                                  max_steps=m, warm_start=warm)
    like = jax.eval_shape(lambda: solve(x0, 12))
    saved = eqx.tree_deserialise_leaves(sys.argv[1], like)
    rest = solve(saved.x, 50, saved)
    full = solve(x0, 62)
    same = all(np.array_equal(rest.x[k], full.x[k]) for k in x0)
    print(same, int(rest.num_steps) == int(full.num_steps), int(rest.num_fun_evals) == int(full.num_fun_evals))
""")


def test_checkpoint_on_disk_resumes_in_a_fresh_process(tmp_path):
    x0 = {"u": jnp.zeros(3), "v": jnp.zeros(2)}
    sol = jm.minimize(_rosenbrock_tree, x0, jm.LBFGS(), args=(1.0,), max_steps=12)
    path = tmp_path / "solve.eqx"
    eqx.tree_serialise_leaves(path, sol)
    script = tmp_path / "resume.py"
    script.write_text(_CHECKPOINT_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.path.dirname(__file__), "JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["True", "True", "True"], run.stdout


# ------------------------------------------------------------ constrained solvers
# min |x - a c|^2 on the simplex (sum x = 1, x >= 0): the Euclidean projection of a c
# onto the simplex, in closed form (sort, find the shift tau, clip)
_SIMPLEX_C = jnp.array([0.9, 0.5, 0.2, -0.3, 0.6])


def _to_simplex(a):
    v = np.sort(np.asarray(a * _SIMPLEX_C))[::-1]
    tau = max((np.sum(v[: k + 1]) - 1) / (k + 1) for k in range(v.size) if v[k] > (np.sum(v[: k + 1]) - 1) / (k + 1))
    return np.maximum(np.asarray(a * _SIMPLEX_C) - tau, 0.0)


def _simplex_distance(x, a):
    return jnp.sum((x - a * _SIMPLEX_C) ** 2)


def _simplex_sum(x, a):
    return jnp.sum(x)[None] - 1.0


_BOX = (jnp.full(5, -1.0), jnp.full(5, 0.5))
_SQP = jm.SQP()


def _simplex_solve(x0, a, max_steps, warm=None):
    # (one compiled solve, cold or warm, shared by the SQP tests: `a` is an array)
    return jm.minimize(_simplex_distance, x0, _SQP, args=(jnp.asarray(a),), eq=_simplex_sum,
                       bounds=(0.0, 1.0), max_steps=max_steps, warm_start=warm)


@pytest.mark.parametrize("name", ["SQP", "LBFGSB"])
def test_resuming_a_constrained_solve_reproduces_the_uninterrupted_solve(name):
    if name == "SQP":
        solve = lambda x0, m, warm=None: _simplex_solve(x0, 1.0, m, warm)  # noqa: E731
        x0, first_steps = jnp.full(5, 0.2), 2
    else:
        solve = lambda x0, m, warm=None: jm.minimize(  # noqa: E731
            _rosenbrock, x0, jm.LBFGSB(), args=(1.0,), bounds=_BOX, max_steps=m, warm_start=warm)
        x0, first_steps = jnp.zeros(5), 6
    full = solve(x0, 40)
    first = solve(x0, first_steps)
    assert int(first.num_steps) == first_steps  # (stopped early, not converged)
    rest = solve(first.x, 40 - first_steps, first)
    np.testing.assert_array_equal(rest.x, full.x)
    for field in ("num_steps", "num_fun_evals", "status", "reason"):
        assert int(getattr(rest, field)) == int(getattr(full, field)), field


def test_sqp_continuation_from_a_warm_start_finds_each_new_solution():
    # a continuation in a: each solve from the previous x, warm (Hessian, multipliers,
    # active set) and cold (x only); both must land on the closed form
    first = _simplex_solve(jnp.full(5, 0.2), 1.0, 100)
    warm = cold = first
    cold_evals = 0
    for a in (1.1, 1.2, 1.3, 1.4):
        warm, cold = _simplex_solve(warm.x, a, 100, warm), _simplex_solve(cold.x, a, 100)
        cold_evals += int(cold.num_fun_evals)
        assert bool(warm.success) and bool(cold.success)
        np.testing.assert_allclose(warm.x, _to_simplex(a), atol=1e-6)
        np.testing.assert_allclose(cold.x, _to_simplex(a), atol=1e-6)
    assert int(warm.num_fun_evals) - int(first.num_fun_evals) < cold_evals


# ------------------------------------------------------------- the problem's digest
# A resumption takes f and g from the earlier state; a problem whose digest differs (here
# one matrix entry moved by one ulp) starts afresh: f and g evaluated at its args.
_MATRIX = jnp.diag(jnp.logspace(0.0, 2.0, 8)) + 0.1


class _Calls:
    """A count of evaluations (an object: a closure's list would count in the digest)."""

    def __init__(self):
        self.count = 0

    def add(self):
        self.count += 1


def _counted_quadratic(calls):
    def fn(x, m):
        jax.debug.callback(calls.add)  # once per evaluation, at run time
        return 0.5 * x @ m @ x - jnp.sum(x)

    return fn


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_resuming_evaluates_nothing_at_the_start_and_a_changed_entry_is_a_new_problem(dtype):
    calls = _Calls()
    fn, solver = _counted_quadratic(calls), jm.LBFGS()
    m = _MATRIX.astype(dtype)
    changed = m.at[2, 5].set(np.nextafter(m[2, 5], np.inf, dtype=dtype))
    first = jm.minimize(fn, jnp.zeros(8, dtype), solver, args=(m,), max_steps=3)  # digested in the solve
    traced = jax.jit(lambda s, m: jm.minimize(fn, s.x, solver, args=(m,), max_steps=0, warm_start=s))

    def constant(m):  # `m` closed over by the caller's `jit`: digested once, while tracing
        return jax.jit(lambda s: jm.minimize(fn, s.x, solver, args=(m,), max_steps=0, warm_start=s))

    resumes = [(lambda s: traced(s, m), True), (constant(m), True),
               (lambda s: traced(s, changed), False), (constant(changed), False)]
    for resume, same in resumes:
        jax.block_until_ready(resume(first))  # (compiles)
        calls.count = 0
        sol = jax.block_until_ready(resume(first))
        assert calls.count == (0 if same else 1)
        assert int(sol.num_fun_evals) == int(first.num_fun_evals) + (0 if same else 1)
        if same:  # the earlier state's own f and g
            np.testing.assert_array_equal(sol.fun, first.fun)
            np.testing.assert_array_equal(sol.state.g, first.state.g)
        else:
            f_changed = 0.5 * first.x @ changed @ first.x - jnp.sum(first.x)
            np.testing.assert_allclose(sol.fun, f_changed, rtol=4 * float(jnp.finfo(dtype).eps))


def _closure_over(c):
    return lambda x: jnp.sum(_D * (x - c) ** 2)  # minimiser c


def test_a_changed_closed_over_array_or_int_arg_is_a_new_problem():
    # warm starts at the earlier solution, whose f and g would pass for converged were
    # the earlier state kept: each must solve the new problem (closed forms)
    solver = jm.LBFGS()
    first = jm.minimize(_closure_over(_C), _X0, solver)
    moved = 2.0 * _C
    direct = jm.minimize(_closure_over(moved), first.x, solver, warm_start=first)
    traced = jax.jit(lambda c, s: jm.minimize(_closure_over(c), s.x, solver, warm_start=s))(moved, first)
    for sol in (direct, traced):
        assert bool(sol.success)
        np.testing.assert_allclose(sol.x, moved, atol=1e-6)

    def shifted(x, k):  # `k` a Python int: not traced, a part of the compiled program
        return jnp.sum(_D * (x - k * _C) ** 2)

    one = jm.minimize(shifted, _X0, solver, args=(1,))
    two = jm.minimize(shifted, one.x, solver, args=(2,), warm_start=one)
    np.testing.assert_allclose(two.x, 2.0 * _C, atol=1e-6)
