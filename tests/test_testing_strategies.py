"""`jm.testing.strategies`: the problems' known solutions are KKT points, solvers reach
them, and `check_optimality` passes every correct solution (zero false alarms) in
float32 and float64: L-BFGS on quadratics (flat and pytree), L-BFGS-B on box QPs (float64), SQP
on equality/inequality QPs (and a flipped multiplier sign from SQP is caught), a sample
of the bundled Moré-Garbow-Hillstrom problems (and L-BFGS's float32 stop at Wood's
saddle point is caught). Also: shrinking gives small readable problems, and
`import jaxmin` does not need Hypothesis.

Sizes are fixed per test so that each (objective, shape, dtype, solver) compiles once
across Hypothesis examples.
"""

import dataclasses
import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import find, given, settings

import jaxmin as jm
from jaxmin.testing import MGH_PROBLEMS
from jaxmin.testing import strategies as S

SETTINGS = settings(max_examples=5, derandomize=True, deadline=None, database=None)
TOL = {jnp.dtype(jnp.float64): 1e-6, jnp.dtype(jnp.float32): 2e-3}


def distance(x, y) -> float:
    """`max |x - y| / max(1, |y|)` over pytree leaves."""
    return max(float(jnp.max(jnp.abs(a - b)) / max(1.0, float(jnp.max(jnp.abs(b)))))
               for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y)))


def solve_sqp(problem):
    """SQP to `gtol = 1e-10`: the certificate's default `rtol` is sqrt(eps) = 1.5e-8,
    tighter than SQP's default `gtol`."""
    return problem.minimize(jm.SQP(gtol=1e-10))


# --- the known solutions are solutions ------------------------------------------------


@SETTINGS
@given(S.strongly_convex(n=3, m=5))
def test_strongly_convex_known_solution(problem):
    rep = problem.check(problem.x_star)
    assert rep, problem.name + "\n" + rep.why
    np.testing.assert_allclose(rep.fun, problem.f_star, rtol=1e-12)


@SETTINGS
@given(S.least_squares_fits(n=3, m=5))
def test_least_squares_known_solution(problem):
    rep = problem.check(problem.x_star)
    assert rep, problem.name + "\n" + rep.why
    assert float(rep.fun) <= 1e-20


@SETTINGS
@given(S.constrained_qps(n=3, num_eq=1, num_ineq=2))
def test_constrained_qp_known_kkt_point(problem):
    """The drawn multipliers pass as given, and least squares recovers them."""
    assert problem.check(problem.x_star, multipliers=problem.multipliers)
    rep = problem.check(problem.x_star, multipliers="estimate")
    assert rep, rep.why
    np.testing.assert_array_equal(rep.active_ineq, problem.active_ineq)
    for got, want in zip((rep.eq_multipliers, rep.ineq_multipliers), problem.multipliers):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


# --- solvers reach them, and the certificate agrees -------------------------------------


@SETTINGS
@given(S.quadratics(n=3, dtype=jnp.float64) | S.quadratics(n=3, dtype=jnp.float32)
       | S.quadratics(n=3, pytree=True))
def test_lbfgs_on_quadratics(problem):
    sol = problem.minimize(jm.LBFGS(gtol=1e-9 if problem.dtype == jnp.float64 else 1e-5))
    assert sol.success and distance(sol.x, problem.x_star) <= 100 * TOL[problem.dtype]
    rep = problem.check(sol)
    assert rep, problem.name + "\n" + rep.why


@SETTINGS
@given(S.box_qps(n=3, dtype=jnp.float64))
def test_lbfgsb_on_box_qps(problem):
    sol = problem.minimize(jm.LBFGS())
    assert sol.success and distance(sol.x, problem.x_star) <= 100 * TOL[problem.dtype]
    rep = problem.check(sol)
    assert rep, problem.name + "\n" + rep.why
    np.testing.assert_array_equal(rep.active_lower, problem.active_lower)
    np.testing.assert_array_equal(rep.active_upper, problem.active_upper)
    np.testing.assert_allclose(rep.bound_multipliers, problem.bound_multipliers, rtol=1e-3, atol=1e-3)


@SETTINGS
@given(S.constrained_qps(n=3, num_eq=1, num_ineq=2))
def test_sqp_on_constrained_qps(problem):
    sol = solve_sqp(problem)
    assert sol.success and distance(sol.x, problem.x_star) <= 1e-6
    rep = problem.check(sol)  # SQP's own multipliers, checked
    assert rep and not rep.multipliers_estimated, problem.name + "\n" + rep.why
    assert problem.check(sol, multipliers="estimate")


def test_sqp_wrong_multiplier_sign_fails():
    problem = find(S.constrained_qps(n=3, num_eq=1, num_ineq=2), lambda p: p.active_ineq.any(),
                   settings=settings(database=None, derandomize=True))
    sol = solve_sqp(problem)
    assert problem.check(sol)
    lam_eq, lam_in = sol.multipliers
    flipped = eqx.tree_at(lambda s: s.multipliers, sol, (lam_eq, -lam_in))
    rep = problem.check(flipped)
    assert not rep.multiplier_sign_ok and not rep, rep.why
    # given multipliers are checked, not trusted: a wrong equality multiplier
    rep = problem.check(sol.x, multipliers=(lam_eq + 1.0, lam_in))
    assert not rep.stationarity_ok and not rep, rep.why


MGH_SAMPLE = [("rosenbrock", jnp.float64), ("powell_singular", jnp.float64), ("osborne1", jnp.float32)]
MGH = {p.name: p for p in MGH_PROBLEMS}


@pytest.mark.parametrize("name, dtype", MGH_SAMPLE, ids=lambda v: getattr(v, "__name__", v))
def test_mgh_solutions_pass(name, dtype):
    """Powell singular has a singular Hessian at x*; Osborne 1 in float32 stops where
    its gradient is rounding noise (~4e-4), above `sqrt(eps)`: the noise floor admits it."""
    problem = MGH[name].astype(dtype)
    sol = problem.minimize(jm.LBFGS(gtol=1e-9 if dtype == jnp.float64 else 1e-5))
    assert sol.success
    assert abs(float(sol.fun) - problem.f_star) <= TOL[jnp.dtype(dtype)] * max(1.0, problem.f_star)
    rep = problem.check(sol)
    assert rep, rep.why


def test_mgh_wood_float32_saddle_is_caught():
    """BFGS in float32 from (-1, 1, -1, 1) reports success at Wood's saddle point
    (f = 7.88, stationary to float32 precision; BFGS does not certify first-order stops
    with a Newton step, README); the certificate finds its negative curvature."""
    problem = MGH["wood"].astype(jnp.float32)
    problem = dataclasses.replace(problem, x0=jnp.array([-1.0, 1.0, -1.0, 1.0], jnp.float32))
    sol = problem.minimize(jm.BFGS())
    assert sol.success and float(sol.fun) > 7.0
    rep = problem.check(sol)
    assert rep.stationarity_ok and not rep.second_order_ok and not rep, rep.why


# --- strategies ----------------------------------------------------------------------


def test_pytree_and_dtype_parameters():
    p = find(S.quadratics(n=4, pytree=True, dtype=jnp.float32), lambda p: True,
             settings=settings(database=None, derandomize=True))
    assert set(p.x0) == {"head", "tail"} and p.x0["tail"].shape == (2, 1)
    assert p.dtype == jnp.float32 and p.args[0].dtype == jnp.float32
    assert p.x_star["head"].dtype == jnp.float32 and p.fn(p.x_star, *p.args).dtype == jnp.float32


def test_failures_shrink_to_small_readable_problems():
    """Shrinking reaches the smallest size the property allows, an unrotated diagonal
    matrix with round entries, and round data."""
    p = find(S.quadratics(), lambda p: p.n >= 2, settings=settings(database=None, derandomize=True))
    A, b = (np.asarray(a) for a in p.args)
    assert p.n == 2 and np.count_nonzero(A - np.diag(np.diag(A))) == 0
    assert set(np.diag(A)) <= {1.0} and np.all(b == 0.0) and np.all(np.asarray(p.x0) == 0.0)
    p = find(S.box_qps(), lambda p: p.active_lower.any(), settings=settings(database=None, derandomize=True))
    assert "cond=1," in p.name and p.active_lower.sum() == 1 and not p.active_upper.any()
    assert np.all(np.asarray(p.x_star) == 0.0) and set(np.asarray(p.bound_multipliers)) <= {0.0, 1.0}


def test_import_without_hypothesis():
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "import jaxmin as jm\n"
        "assert callable(jm.testing.check_optimality)\n"
        "try:\n"
        "    jm.testing.strategies\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "needs Hypothesis" in out.stdout
