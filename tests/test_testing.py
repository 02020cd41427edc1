"""`jm.testing.check_optimality`: every planted defect is caught (a perturbed solution, a
saddle point, a violated bound, a wrong multiplier sign, a wrong gradient), the Lanczos
curvature against dense eigenvalues, `vmap`, and a large problem (n = 10^5) checked
without any n x n array.

Correct solutions passing (zero false alarms) and a solver's multipliers with a flipped
sign are in `test_testing_strategies.py`; `check_derivatives` (a wrong hypergradient) in
`test_testing_derivatives.py`.
Compilations are the budget: the objectives are module-level functions with their data
in `args`, so each (objective, shape, dtype) compiles once.
"""

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxmin as jm
from jaxmin.testing import check_optimality
from jaxmin.testing import strategies as S
from jaxmin.testing._lanczos import smallest_eigenvalue

SETTINGS = settings(max_examples=6, derandomize=True, deadline=None, database=None)


def quadratic(x, A, b):
    return 0.5 * jnp.dot(x, A @ x) - jnp.dot(b, x)


def separable(x, d, b):
    return 0.5 * jnp.sum(d * x * x) - jnp.dot(b, x)


def shifted(x, c):
    return jnp.sum((x - c) ** 2)


def upper_three(x, c):  # 3 - x_0 >= 0
    return jnp.stack([3.0 - x[0]])


# --- Lanczos ------------------------------------------------------------------------


@jax.jit
def _lanczos(A, v0):
    lo, hi, k = smallest_eigenvalue(lambda v: A @ v, v0, 12)
    return lo, hi, k


def test_lanczos_matches_dense(key):
    M = jax.random.normal(key, (12, 12))
    A = 0.5 * (M + M.T)
    lo, hi, k = _lanczos(A, jnp.ones(12))
    eig = np.linalg.eigvalsh(np.asarray(A))
    assert int(k) == 12
    np.testing.assert_allclose([lo, hi], [eig[0], eig[-1]], rtol=1e-10)
    # an invariant subspace: v0 = e_0 of a diagonal matrix stops after one step
    lo, hi, k = _lanczos(jnp.diag(jnp.arange(1.0, 13.0)), jnp.zeros(12).at[0].set(1.0))
    assert (float(lo), float(hi), int(k)) == (1.0, 1.0, 1)
    # an empty subspace
    lo, hi, k = _lanczos(A, jnp.zeros(12))
    assert float(lo) == np.inf and int(k) == 0


def test_reduced_curvature_matches_dense(key):
    """Equality rows and an active bound remove directions; the Lanczos value equals the
    smallest eigenvalue of the dense reduced Hessian Z^T H Z (steps >= its dimension)."""
    n = 6
    M = jax.random.normal(key, (n, n))
    H = 0.5 * (M + M.T) + 1.5 * jnp.eye(n)  # indefinite
    J = jnp.asarray(np.random.default_rng(0).normal(size=(2, n)))
    rep = check_optimality(
        quadratic, jnp.zeros(n), (H, jnp.zeros(n)), eq=lambda x, A, b: J @ x,
        bounds=(jnp.zeros(n).at[1:].set(-jnp.inf), jnp.inf),
    )
    free = np.arange(1, n)  # x_0 sits at its lower bound
    _, s, vt = np.linalg.svd(np.asarray(J)[:, free])
    Z = vt[2:].T
    dense = np.linalg.eigvalsh(Z.T @ np.asarray(H)[np.ix_(free, free)] @ Z)[0]
    np.testing.assert_allclose(float(rep.min_curvature), dense, rtol=1e-9)
    assert bool(rep.second_order_ok) == (dense > 0)
    assert bool(rep.active_lower[0]) and int(rep.lanczos_steps) == n - 1 - 2


# --- planted defects: zero misses ----------------------------------------------------


@SETTINGS
@given(S.quadratics(n=3, dtype=jnp.float64) | S.quadratics(n=3, dtype=jnp.float32), st.sampled_from([-1.0, 1.0]))
def test_perturbed_unconstrained_solution_fails(problem, sign):
    """Moved by 1e-3 relative (float64) or 1e-1 (float32: smaller moves of f ~ 1e4 can be
    below what float32 resolves, and then the point is optimal to its precision)."""
    size = 1e-3 if problem.dtype == jnp.float64 else 1e-1
    x = problem.x_star + sign * size * (1.0 + jnp.abs(problem.x_star))
    assert problem.check(problem.x_star), problem.check(problem.x_star).why
    rep = problem.check(x)
    assert not rep and not rep.stationarity_ok, rep.why


@SETTINGS
@given(S.box_qps(n=3), st.sampled_from([-1.0, 1.0]))
def test_perturbed_box_solution_fails(problem, sign):
    x = problem.x_star + sign * 1e-3 * (1.0 + jnp.abs(problem.x_star))
    rep = problem.check(x)
    assert not rep, rep.why
    assert not (rep.stationarity_ok & rep.feasibility_ok), rep.why


@SETTINGS
@given(S.constrained_qps(n=3, num_eq=1, num_ineq=2))
def test_perturbed_constrained_solution_fails(problem):
    x = problem.x_star + 1e-3 * (1.0 + jnp.abs(problem.x_star))
    for multipliers in (problem.multipliers, "estimate"):
        assert problem.check(problem.x_star, multipliers=multipliers)
        rep = problem.check(x, multipliers=multipliers)
        assert not rep, rep.why


def test_perturbed_solution_object_fails():
    """The certificate recomputes everything at `sol.x`: a Solution whose `x` was moved
    (its `fun`, `grad`, `success` untouched) fails."""
    A, b = jnp.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 3.0]]), jnp.ones(3)
    sol = jm.minimize(quadratic, jnp.zeros(3), jm.LBFGS(gtol=1e-10), args=(A, b))
    assert check_optimality(quadratic, sol, (A, b))
    moved = eqx.tree_at(lambda s: s.x, sol, sol.x + 1e-4)
    assert bool(moved.success) and not check_optimality(quadratic, moved, (A, b))


def test_saddle_point_fails():
    d, zero = jnp.array([1.0, -0.5, 2.0]), jnp.zeros(3)
    rep = check_optimality(separable, zero, (d, zero))
    assert rep.stationarity_ok and not rep.second_order_ok and not rep, rep.why
    np.testing.assert_allclose(rep.min_curvature, -0.5, rtol=1e-12)
    # on the null space of the equality `e.x = 0` the same point is a minimiser, or not
    fn, eq = lambda x, d, e: separable(x, d, zero), lambda x, d, e: e[None, :] @ x  # noqa: E731
    assert check_optimality(fn, zero, (d, jnp.array([0.0, 1.0, 0.0])), eq=eq)
    rep = check_optimality(fn, zero, (d, jnp.array([1.0, 0.0, 0.0])), eq=eq)
    assert not rep.second_order_ok, rep.why


def test_violated_bound_fails():
    c = jnp.array([2.0, 0.5])
    bounds = (0.0, jnp.array([1.0, 1.0]))
    assert check_optimality(shifted, jnp.array([1.0, 0.5]), (c,), bounds=bounds)
    rep = check_optimality(shifted, jnp.array([1.001, 0.5]), (c,), bounds=bounds)
    assert not rep.feasibility_ok and not rep, rep.why


def test_wrong_multiplier_sign_fails():
    c = jnp.array([2.0, 0.5])
    # estimated: x_0 = 3 on `3 - x_0 >= 0`, but f decreases inwards: multiplier -2
    rep = check_optimality(shifted, jnp.array([3.0, 0.5]), (c,), ineq=upper_three)
    assert not rep.multiplier_sign_ok and not rep, rep.why
    np.testing.assert_allclose(rep.ineq_multipliers, [-2.0])
    # the same for a bound: x_0 at its lower bound 3 with f = (x_0 - 4)^2 + ... decreasing upwards
    rep = check_optimality(shifted, jnp.array([3.0, 0.5]), (c.at[0].set(4.0),), bounds=(jnp.array([3.0, -1.0]), 5.0))
    assert not rep.multiplier_sign_ok and not rep, rep.why


@jax.custom_jvp
def _off_gradient(x):
    return jnp.sum((x - 1.0) ** 2)


@_off_gradient.defjvp
def _off_gradient_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    # the derivative of sum((x - 1)^2) would be 2 (x - 1); this one is 0.1 off
    return _off_gradient(x), jnp.dot(2.0 * (x - 1.0) + 0.1, dx)


def off_objective(x):
    return _off_gradient(x)


def test_wrong_gradient_fails():
    sol = jm.minimize(off_objective, jnp.zeros(3), jm.LBFGS(gtol=1e-10))
    assert sol.success  # the solver trusts the gradient and stops at x = 0.95
    rep = check_optimality(off_objective, sol)
    assert rep.stationarity_ok and not rep.gradient_ok and not rep, rep.why


# --- batches, jit, reports --------------------------------------------------------------


def test_vmap_reports_each_member():
    A, b = jnp.diag(jnp.array([1.0, 2.0, 3.0])), jnp.array([1.0, 1.0, 1.0])
    x_star = b / jnp.diag(A)
    xs = jnp.stack([x_star, x_star + 1e-3, x_star.at[0].set(0.0)])
    batch = jax.vmap(lambda x: check_optimality(quadratic, x, (A, b)))(xs)
    assert batch.passed.shape == (3,) and batch.gradient_error.shape == (3, 3)
    singles = [check_optimality(quadratic, x, (A, b)) for x in xs]
    np.testing.assert_array_equal(batch.passed, [True, False, False])
    for i, single in enumerate(singles):
        assert bool(batch.passed[i]) == bool(single)
        np.testing.assert_allclose(batch.stationarity[i], single.stationarity, rtol=1e-12, atol=1e-12)
    assert not batch and "2 of 3 members failed" in batch.why and "member (1,)" in batch.why
    # over args as well
    batch = jax.vmap(lambda b: check_optimality(quadratic, b / jnp.diag(A), (A, b)))(jnp.stack([b, 2.0 * b]))
    assert batch and batch.why == "all 2 members passed"


def test_report_truthiness_needs_concrete_values():
    A, b = jnp.eye(3), jnp.ones(3)

    @jax.jit
    def certified(x):
        rep = check_optimality(quadratic, x, (A, b))
        with pytest.raises(TypeError, match="truthy only outside"):
            bool(rep)
        return rep.passed

    assert bool(certified(b))


# --- a large problem: no dense Hessian ------------------------------------------------

N_LARGE = 100_000


def _largest_intermediate(jaxpr) -> int:
    """The largest array (elements) any equation of `jaxpr` or its sub-jaxprs makes."""
    largest = 0
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            largest = max(largest, int(np.prod(getattr(v.aval, "shape", ()))))
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    largest = max(largest, _largest_intermediate(inner))
    return largest


def test_large_problem_has_no_dense_hessian():
    """n = 10^5 (a dense Hessian would be 80 GB). Measured on the 2-core CI machine: the
    L-BFGS solve takes ~125 evaluations and ~0.4 s warm; the check 5 gradients, 12 values
    and 40 Hessian-vector products, ~0.2 s warm (~2 s with its compilation)."""
    d = jnp.linspace(1.0, 100.0, N_LARGE)
    b = jnp.ones(N_LARGE)
    sol = jm.minimize(separable, jnp.zeros(N_LARGE), jm.LBFGS(gtol=1e-9), args=(d, b))
    rep = check_optimality(separable, sol, (d, b))
    assert rep, rep.why
    start = time.perf_counter()
    rep = jax.block_until_ready(check_optimality(separable, sol.x, (d, b)))
    elapsed = time.perf_counter() - start
    assert rep and elapsed < 5.0
    assert int(rep.num_hvp_evals) <= 80 and int(rep.num_fun_evals) == 17
    # the same stationary point with one negative curvature: a saddle Lanczos finds
    d_saddle = d.at[N_LARGE // 2].set(-1.0)
    rep = check_optimality(separable, b / d_saddle, (d_saddle, b))
    assert rep.stationarity_ok and not rep.second_order_ok, rep.why
    np.testing.assert_allclose(rep.min_curvature, -1.0, rtol=1e-3)
    # nothing n x n anywhere in the program: the largest array is Lanczos's basis
    jaxpr = jax.make_jaxpr(lambda x: check_optimality(separable, x, (d, b)).passed)(sol.x)
    assert _largest_intermediate(jaxpr.jaxpr) <= 64 * N_LARGE
