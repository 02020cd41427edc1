"""Verdicts users can trust, in float32 (JAX's default) and float64: the MGH table
graded against the published optima, and the cases of issue 12 (divergence, learning
rates, stalls far from a solution, ridge regression)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import jaxmin as jm
from helpers import callback_objective
import verdict_table
from problems import by_name

# Wrong verdicts measured with default settings: none. The first-order tests of
# `jaxmin/solvers/_stopping.py` alone called two kinds of point a solution in float32 --
# the saddle of wood (f = 7.8769, stationary to float32 precision; every pair L-BFGS met
# had s.y > 0, so its model never saw the negative curvature) and the floor of a valley
# too flat for the dtype (osborne1 under L-BFGS, powell_badly_scaled under Newton-CG:
# Hessian condition beyond 1/eps32, gradient at its rounding noise, f far above f*). Both
# solvers now certify such a stop with an accurate Newton step before ending on it.
KNOWN_FALSE_SUCCESSES = {
    "LBFGS": set(),
    "NewtonCG": set(),
}
_EPS32 = float(np.finfo(np.float32).eps)


def _hessian64(problem, x):
    """The Hessian of the problem at x, in float64 (the tests run with x64 enabled)."""
    return np.asarray(jax.hessian(problem.fn)(jnp.asarray(x, jnp.float64)))


def _gradient64(problem, x):
    return np.asarray(jax.grad(problem.fn)(jnp.asarray(x, jnp.float64)))


@pytest.mark.parametrize("name", ["LBFGS", "NewtonCG"])
def test_float32_mgh_verdicts(name):
    verdicts = verdict_table.verdicts(name)
    false_failures = sorted(p for p, (reached, ok, _) in verdicts.items() if reached and not ok)
    false_successes = {p for p, (reached, ok, _) in verdicts.items() if ok and not reached}
    assert len(false_failures) <= 1, false_failures
    assert false_successes <= KNOWN_FALSE_SUCCESSES[name], false_successes
    # the answers a user trusts: most of the table solved and said so
    assert sum(reached and ok for reached, ok, _ in verdicts.values()) >= 26


@pytest.fixture(scope="module")
def wood_saddle():
    """Wood's saddle point, the root of its float64 gradient near (-0.97, 0.95, -0.96,
    0.94) found by SciPy, with the float64 Hessian's eigenvalues there."""
    p = by_name("wood")
    root = scipy.optimize.root(lambda x: _gradient64(p, x), [-0.97, 0.95, -0.96, 0.94], jac=lambda x: _hessian64(p, x))
    assert root.success
    return root.x, np.linalg.eigvalsh(_hessian64(p, root.x))


@pytest.mark.parametrize("solver", [jm.LBFGS(), jm.NewtonCG()], ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("start", ["x0", "saddle"])
def test_wood_saddle_is_left_for_the_minimum(solver, start, wood_saddle):
    # a stationary point with a negative Hessian eigenvalue, f = 7.8769 > f* = 0: the
    # certifying Newton step meets the negative curvature and follows it down to the
    # published minimum x* = 1, where the float64 Hessian is positive definite
    p = by_name("wood")
    saddle, eigenvalues = wood_saddle
    assert eigenvalues[0] < -0.05 < 0 < eigenvalues[-1] and float(p.fn(jnp.asarray(saddle))) > 7.8
    x0 = p.x0 if start == "x0" else saddle
    # at the saddle itself the float32 gradient is rounding, 1e-5 give or take (9.8e-6
    # compiled without multiply-adds fused, 1.4e-5 with): under the default gtol = 1e-5
    # the start may pass the gradient test, a first-order stop as SciPy's would be. At
    # gtol = 1e-6 the solver must move, and then its certificate must find the negative
    # curvature rather than stop at the saddle
    if start == "saddle":
        solver = eqx.tree_at(lambda s: s.gtol, solver, 1e-6)
    sol = jm.minimize(p.fn, jnp.asarray(x0, jnp.float32), solver)
    assert sol.success, sol.message
    assert float(sol.fun) <= 1e-5
    np.testing.assert_allclose(sol.x, p.x_star, atol=1e-2)
    assert np.linalg.eigvalsh(_hessian64(p, sol.x))[0] > 0


def test_lbfgs_float32_osborne1_reaches_the_certified_optimum():
    # the Hessian's condition at the optimum exceeds 1/eps32; the first-order tests
    # stopped 40% above f*, where the exact Newton decrement was a large part of f
    p = by_name("osborne1")
    sol = jm.minimize(p.fn, jnp.asarray(p.x0, jnp.float32), jm.LBFGS())
    assert sol.success, sol.message
    np.testing.assert_allclose(float(sol.fun), p.f_star, rtol=1e-3)  # NIST's certified value
    eigenvalues = np.linalg.eigvalsh(_hessian64(p, p.x_star))
    assert eigenvalues[-1] / eigenvalues[0] > 1 / _EPS32


def test_lbfgs_certificate_differentiates_a_custom_vjp_objective():
    # the certifying step's Hessian products are reverse over reverse: an objective
    # with only a custom VJP still solves (to the root of 2(x - 1) + 4 x^3 = 0)
    @jax.custom_vjp
    def fn(x):
        return jnp.sum((x - 1.0) ** 2) + jnp.sum(x**4)

    fn.defvjp(lambda x: (fn(x), x), lambda x, ct: (ct * (2 * (x - 1.0) + 4 * x**3),))
    sol = jm.minimize(fn, jnp.zeros(3, jnp.float32), jm.LBFGS())
    assert sol.success, sol.message
    root = scipy.optimize.brentq(lambda t: 2 * (t - 1) + 4 * t**3, 0.0, 1.0)
    np.testing.assert_allclose(sol.x, np.full(3, root), rtol=1e-5)


def test_lbfgs_objective_differentiable_only_once_still_solves():
    # a simulator behind a callback, its gradient a callback too: no second derivative
    # exists for JAX, so the certificate is skipped and the first-order tests decide
    # (the root of 2(x - 1) + 0.4 x^3 = 0)
    def value(x):
        return np.float32(np.sum((x - 1.0) ** 2) + 0.1 * np.sum(x**4))

    def gradient(x):
        return (2 * (x - 1.0) + 0.4 * x**3).astype(np.float32)

    fn = callback_objective(value, gradient)
    sol = jm.minimize(fn, jnp.zeros(3, jnp.float32), jm.LBFGS())
    assert sol.success, sol.message
    root = scipy.optimize.brentq(lambda t: 2 * (t - 1) + 0.4 * t**3, 0.0, 1.0)
    np.testing.assert_allclose(sol.x, np.full(3, root), rtol=1e-5)
    assert int(sol.num_hvp_evals) == 0


def test_newton_cg_float32_stop_short_of_a_flat_valley_is_a_failure():
    # Powell badly scaled in float32: the Hessian's condition exceeds 1/eps32 and the
    # gradient passes the relative-gradient guard, but f is far above f* = 0; the
    # exact Newton decrement there (float64) is a large part of f: not a solution
    p = by_name("powell_badly_scaled")
    sol = jm.minimize(p.fn, jnp.asarray(p.x0, jnp.float32), jm.NewtonCG())
    assert not sol.success and int(sol.status) == jm.Status.STAGNATED, sol.message
    assert "ill-conditioned for float32" in sol.message and "rescale" in sol.message
    h, g = _hessian64(p, sol.x), _gradient64(p, sol.x)
    eigenvalues = np.linalg.eigvalsh(h)
    assert eigenvalues[-1] / eigenvalues[0] > 1 / _EPS32
    newton_decrement = 0.5 * g @ np.linalg.solve(h, g)
    assert newton_decrement > 0.1 * float(sol.fun) > 1e-6
    # float64 resolves the valley: the published optimum, said so (with a `gtol` below
    # the default 1e-5, which this valley's gradient meets at f = 4.5e-6)
    sol64 = jm.minimize(p.fn, jnp.asarray(p.x0, jnp.float64), jm.NewtonCG(gtol=1e-10))
    assert sol64.success and float(sol64.fun) <= 1e-12, sol64.message


def test_meyer_float32_stall_is_a_failure_with_fitting_advice():
    p = by_name("meyer")
    sol = jm.minimize(p.fn, jnp.asarray(p.x0, jnp.float32), jm.LBFGS())
    assert int(sol.status) == jm.Status.STAGNATED and not sol.success
    assert "rescale" in sol.message
    assert "gtol" not in sol.message and "float64" not in sol.message


def test_search_failure_from_cancellation_in_f_says_so():
    # x.Ax/2 - b.x with condition 1e6, float64: terms of ~1e5 cancel in A x, so f rounds
    # near 1e-10, far above eps |f|, and no step decreases it beyond max|g| ~ 2e-4
    # (SciPy's L-BFGS-B stops at the same place): x is then as accurate as f resolves
    # along A's least eigenvector, sqrt(2 rounding / lambda_min) ~ 1e-5
    n, rng = 20, np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    a = q @ np.diag(np.logspace(0, 6, n)) @ q.T
    b = rng.standard_normal(n)
    quadratic = lambda x, a, b: 0.5 * x @ a @ x - b @ x
    sol = jm.minimize(quadratic, jnp.zeros(n), jm.LBFGS(gtol=1e-6), args=(jnp.asarray(a), jnp.asarray(b)),
                      max_steps=5000)
    assert int(sol.status) == jm.Status.LINESEARCH_FAILED, sol.message
    assert "cancellation" in sol.message and "sum of squares" in sol.message
    np.testing.assert_allclose(sol.x, np.linalg.solve(a, b), atol=1e-4)


def _rosenbrock(x, a):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (a - x[:-1]) ** 2)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_readme_rosenbrock_is_a_success(dtype):
    sol = jm.minimize(_rosenbrock, jnp.zeros(100, dtype), jm.LBFGS(gtol=1e-6), args=(1.0,))
    assert sol.success, sol.message
    np.testing.assert_allclose(sol.x, jnp.ones(100), atol=3e-3 if dtype == jnp.float32 else 1e-5)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_ridge_regression_is_a_success(dtype, key):
    A = jax.random.normal(key, (40, 4), dtype)
    b = A @ jnp.array([1.0, -2.0, 3.0, 0.5], dtype)
    fn = lambda x: jnp.sum((A @ x - b) ** 2) + 0.1 * jnp.sum(x**2)
    sol = jm.minimize(fn, jnp.zeros(4, dtype))
    assert sol.success, sol.message
    A64, b64 = np.asarray(A, np.float64), np.asarray(b, np.float64)
    x_star = np.linalg.solve(A64.T @ A64 + 0.1 * np.eye(4), A64.T @ b64)
    np.testing.assert_allclose(sol.x, x_star, rtol=1e-3 if dtype == jnp.float32 else 1e-6)


@pytest.mark.parametrize("solver", [jm.LBFGS(), jm.NewtonCG()], ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_unbounded_objective_diverges(solver, dtype):
    sol = jm.minimize(lambda x: jnp.sum(x), jnp.zeros(3, dtype), solver)
    assert int(sol.status) == jm.Status.DIVERGED, sol.message
    assert "unbounded below" in sol.message and "max_steps" not in sol.message


def test_fixed_step_divergence_names_the_learning_rate():
    sol = jm.minimize(_rosenbrock, jnp.zeros(2), jm.GradientDescent(1.0), args=(1.0,))
    assert int(sol.status) == jm.Status.DIVERGED and int(sol.reason) == jm.Reason.LEARNING_RATE
    assert "learning_rate" in sol.message
    assert bool(jnp.all(jnp.isfinite(sol.x)))


def test_max_steps_advice_only_while_progressing():
    # slow but steady: the cap, and the advice to raise it
    sol = jm.minimize(_rosenbrock, jnp.zeros(2), jm.GradientDescent(1e-3), args=(1.0,), max_steps=200)
    assert int(sol.status) == jm.Status.MAX_STEPS and "raise `max_steps`" in sol.message
    # a constant Fromage step circles the minimiser: a stall, not "raise max_steps"
    sol = jm.minimize(_rosenbrock, jnp.array([0.5, 0.5]), jm.Fromage(0.05), args=(1.0,), max_steps=5000)
    assert int(sol.status) == jm.Status.STAGNATED and int(sol.num_steps) < 5000, sol.message
    assert "max_steps" not in sol.message


def test_every_status_and_reason_has_a_message():
    for reason in jm.Reason:
        assert jm.solvers._stopping.status_of(jnp.asarray(int(reason))) in list(jm.Status)
    from jaxmin._solution import MESSAGES, REASON_MESSAGES
    assert set(MESSAGES) == set(jm.Status) and set(REASON_MESSAGES) == set(jm.Reason)


def test_throw_covers_derivatives_of_a_failed_solve():
    fn = lambda x, a: jnp.sum((x - a) ** 2) + jnp.sum(x**4)
    solve = lambda a, steps: jm.minimize(fn, jnp.zeros(3), jm.LBFGS(), args=(a,), max_steps=steps, throw=True).x.sum()
    with pytest.raises(Exception, match="did not converge"):
        jax.block_until_ready(jax.jit(jax.grad(lambda a: solve(a, 1)))(1.0))
    # a converged solve differentiates as usual: d/da of sum(x*) with 2(x - a) + 4x^3 = 0
    x = jm.minimize(fn, jnp.zeros(3), jm.LBFGS(gtol=1e-10), args=(1.0,)).x
    expected = jnp.sum(2.0 / (2.0 + 12.0 * x**2))
    np.testing.assert_allclose(jax.jit(jax.grad(lambda a: solve(a, 1000)))(1.0), expected, rtol=1e-6)
