"""First-order solvers: `GradientDescent` (fixed, scheduled, line search),
`OptimisticGradient` (the exact first step, stability) and `Fromage` (scheduled
learning rates, zero norms); statuses; learning-rate schedules."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmin as jm
from helpers import tol, wrong_gradient
from jaxmin.solvers._fromage import fromage_update

# a coupled quadratic f = 1/2 z.A z - b.z: A = [[a, c], [c, a]], eigenvalues a +- c
A_COUPLED = jnp.array([[1.0, 0.9], [0.9, 1.0]])  # eigenvalues 1.9 and 0.1
B = jnp.array([1.0, -0.5])
X0 = jnp.array([1.0, -2.0])
X_STAR = jnp.linalg.solve(A_COUPLED, B)


def _quadratic(x, A, b):
    return 0.5 * x @ A @ x - b @ x


def _args(dtype):
    return A_COUPLED.astype(dtype), B.astype(dtype)


def _x_star_close(sol, dtype, gtol):
    # |x - x*| <= |g| / lambda_min
    np.testing.assert_allclose(sol.x, X_STAR, rtol=0, atol=10 * gtol / 0.1 + tol(dtype))


# ----------------------------------------------------------------------------- GradientDescent
SEARCHES = [None, jm.linesearch.Backtracking(), jm.linesearch.Zoom(), jm.linesearch.HagerZhang()]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("search", SEARCHES, ids=lambda s: type(s).__name__)
def test_gradient_descent_converges(search, dtype):
    # with a line search, gtol must leave f (~5.7 here) a decrease it can resolve
    if dtype == jnp.float32:
        gtol = 1e-3 if search is None else 1e-2
    else:
        gtol = 1e-8 if search is None else 1e-6
    solver = jm.GradientDescent(0.5 if search is None else 1.0, linesearch=search, gtol=gtol)
    sol = jm.minimize(_quadratic, X0.astype(dtype), solver, args=_args(dtype), max_steps=2000)
    assert sol.success, sol.message
    assert sol.x.dtype == dtype and sol.fun.dtype == dtype
    _x_star_close(sol, dtype, gtol)
    if search is None:  # one evaluation per step, plus the start
        assert int(sol.num_fun_evals) == int(sol.num_steps) + 1
        np.testing.assert_allclose(sol.state.alpha, 0.5)


def test_gradient_descent_steps_follow_the_schedule():
    # both a plain callable (int32 step in, value out) and an optax schedule
    schedules = [lambda k: 0.5 / (1.0 + k.astype(jnp.float64)), optax.exponential_decay(0.5, 1, 0.8)]
    args = _args(jnp.float64)
    grad = jax.grad(_quadratic)
    for schedule in schedules:
        solver = jm.GradientDescent(schedule)
        x, state = X0, solver.init(_quadratic, X0, args)
        for k in range(3):
            x_next, state = solver.step(_quadratic, x, state, args)
            lr = jnp.asarray(schedule(jnp.array(k, jnp.int32)), jnp.float64)
            np.testing.assert_allclose(x_next, x - lr * grad(x, *args), rtol=1e-15)
            np.testing.assert_allclose(state.alpha, lr, rtol=1e-15)
            x = x_next
        assert state.k.dtype == jnp.int32 and int(state.k) == 3
        sol = jm.minimize(_quadratic, X0, jm.GradientDescent(schedule, gtol=1e-6), args=args,
                          max_steps=5000)
        # (the exponential schedule decays to nothing: its iterates freeze, a stall)
        assert int(sol.status) in (jm.Status.CONVERGED, jm.Status.MAX_STEPS, jm.Status.STAGNATED)


def test_gradient_descent_schedule_with_line_search_sets_first_trial():
    # the learning rate is the line search's first trial: a huge one is shrunk
    solver = jm.GradientDescent(optax.constant_schedule(100.0), linesearch=jm.linesearch.Backtracking())
    sol = jm.minimize(_quadratic, X0, solver, args=_args(jnp.float64), max_steps=3)
    assert float(sol.state.alpha) < 100.0 * 0.5**5
    assert int(sol.state.ls_evals) > 1


def test_too_large_step_diverges_naming_the_learning_rate():
    # alpha lambda_max = 2.28 > 2: gradient descent diverges geometrically
    sol = jm.minimize(_quadratic, X0, jm.GradientDescent(1.2), args=_args(jnp.float64), max_steps=10_000)
    assert int(sol.status) == jm.Status.DIVERGED, sol.message
    assert int(sol.reason) == jm.Reason.LEARNING_RATE and "learning_rate" in sol.message
    assert int(sol.num_steps) < 10_000
    assert bool(jnp.all(jnp.isfinite(sol.x))) and bool(jnp.isfinite(sol.fun))


@pytest.mark.parametrize(
    "solver",
    [jm.GradientDescent(0.5), jm.OptimisticGradient(0.5, 0.1), jm.Fromage(0.1)],
    ids=lambda s: type(s).__name__,
)
def test_statuses(solver):
    args = _args(jnp.float64)
    sol = jm.minimize(_quadratic, jnp.array([jnp.nan, 1.0]), solver, args=args)
    assert int(sol.status) == jm.Status.NONFINITE and int(sol.num_steps) == 0
    sol = jm.minimize(_quadratic, X0, solver, args=args, max_steps=3)
    assert int(sol.status) == jm.Status.MAX_STEPS and int(sol.num_steps) == 3
    # a NaN region ahead: the step into it is not taken
    nan_ahead = lambda x, A, b: jnp.where(x[0] > 1.5, jnp.nan, _quadratic(x, A, b))
    sol = jm.minimize(nan_ahead, X0, solver, args=args, max_steps=50)
    assert int(sol.status) == jm.Status.NONFINITE
    assert bool(jnp.all(jnp.isfinite(sol.x))) and float(sol.x[0]) <= 1.5


def test_gradient_descent_line_search_failure_is_reported():
    sol = jm.minimize(wrong_gradient, jnp.array([3.0, -2.0]),
                      jm.GradientDescent(1.0, linesearch=jm.linesearch.Zoom()))
    assert int(sol.status) == jm.Status.LINESEARCH_FAILED, sol.message
    np.testing.assert_array_equal(sol.x, jnp.array([3.0, -2.0]))


# ----------------------------------------------------------------------------- OptimisticGradient
def test_optimistic_first_step_is_alpha_g0_exactly():
    alpha, beta = 0.3, 0.7
    args = _args(jnp.float64)
    solver = jm.OptimisticGradient(alpha, beta)
    state = solver.init(_quadratic, X0, args)
    x1, state1 = solver.step(_quadratic, X0, state, args)
    g0 = jax.grad(_quadratic)(X0, *args)
    np.testing.assert_array_equal(x1, X0 - alpha * g0)  # not (alpha + beta) g0
    np.testing.assert_allclose(jnp.linalg.norm(x1 - X0), alpha * jnp.linalg.norm(g0), rtol=1e-15)
    assert int(state1.k) == 1 and state1.k.dtype == jnp.int32
    # the second step uses the first gradient: (alpha + beta) g1 - beta g0
    x2, _ = solver.step(_quadratic, x1, state1, args)
    g1 = jax.grad(_quadratic)(x1, *args)
    np.testing.assert_allclose(x2, x1 - ((alpha + beta) * g1 - beta * g0), rtol=1e-15)


def test_optimistic_first_step_does_not_overshoot():
    # f = 1/2 (4 x^2 + y^2), alpha = 1/4: the first step lands exactly on the minimiser
    # along x (a zero placeholder for g_{-1} would step (alpha + beta) g0 and land at
    # -beta/alpha x0, on the far side)
    fn = lambda z: 0.5 * (4.0 * z[0] ** 2 + z[1] ** 2)
    z0 = jnp.array([1.0, 1.0])
    alpha, beta = 0.25, 0.1
    sol = jm.minimize(fn, z0, jm.OptimisticGradient(alpha, beta), max_steps=1)
    np.testing.assert_array_equal(sol.x, jnp.array([0.0, 0.75]))
    oversized = z0 - (alpha + beta) * jax.grad(fn)(z0)
    assert float(oversized[0]) < 0  # what the bug did
    # and the whole solve converges ((alpha + 2 beta) lambda_max = 1.8 < 2)
    sol = jm.minimize(fn, z0, jm.OptimisticGradient(alpha, beta, gtol=1e-10), max_steps=500)
    assert sol.success
    np.testing.assert_allclose(sol.x, jnp.zeros(2), atol=1e-9)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_optimistic_converges_on_coupled_quadratic(dtype):
    # bilinear coupling 0.9 x y makes the problem ill conditioned (cond = 19) but the
    # minimiser stays unique
    gtol = 1e-3 if dtype == jnp.float32 else 1e-8
    solver = jm.OptimisticGradient(0.5, 0.25, gtol=gtol)
    sol = jm.minimize(_quadratic, X0.astype(dtype), solver, args=_args(dtype), max_steps=5000)
    assert sol.success, sol.message
    assert sol.x.dtype == dtype
    _x_star_close(sol, dtype, gtol)


def test_optimistic_stability_boundary():
    # Jury's criterion: stable iff (alpha + 2 beta) lambda_max < 2 (and beta lambda < 1);
    # lambda_max = 1.9. Gradient descent with the same alpha converges in both cases:
    # for a scalar objective optimism narrows the stable range.
    alpha, args = 0.5, _args(jnp.float64)
    for beta, stable in [(0.25, True), (0.30, False)]:  # (alpha + 2 beta) 1.9 = 1.9, 2.09
        sol = jm.minimize(_quadratic, X0, jm.OptimisticGradient(alpha, beta, gtol=1e-8), args=args,
                          max_steps=20_000)
        expected = jm.Status.CONVERGED if stable else jm.Status.DIVERGED
        assert int(sol.status) == expected, (beta, sol.message)
        assert jm.minimize(_quadratic, X0, jm.GradientDescent(alpha, gtol=1e-8), args=args,
                           max_steps=20_000).success


# ----------------------------------------------------------------------------- Fromage
def _target(x, c):
    return 0.5 * jnp.sum((x - c) ** 2)


C = jnp.array([1.0, -2.0, 0.5])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_fromage_converges_with_a_decaying_schedule(dtype):
    gtol = 1e-2 if dtype == jnp.float32 else 1e-6
    schedule = optax.exponential_decay(0.2, 10, 0.8)
    solver = jm.Fromage(schedule, gtol=gtol)
    sol = jm.minimize(_target, jnp.ones(3, dtype), solver, args=(C.astype(dtype),), max_steps=5000)
    assert sol.success, sol.message
    assert sol.x.dtype == dtype
    np.testing.assert_allclose(sol.x, C, atol=2 * gtol)


def test_fromage_uses_the_scheduled_value():
    # eta and eta^2 are evaluated on the value at each step (optax's bug: on the schedule)
    schedule = optax.linear_schedule(0.3, 0.1, 4)
    solver = jm.Fromage(schedule)
    x, state = jnp.ones(3), solver.init(_target, jnp.ones(3), (C,))
    for k in range(3):
        g = jax.grad(_target)(x, C)
        eta = float(schedule(jnp.array(k, jnp.int32)))  # what the solver is given
        expected = (x - eta * jnp.linalg.norm(x) / jnp.linalg.norm(g) * g) / np.sqrt(1 + eta**2)
        x, state = solver.step(_target, x, state, (C,))
        np.testing.assert_allclose(x, expected, rtol=1e-14)
        np.testing.assert_allclose(state.alpha, eta, rtol=1e-15)


def test_fromage_zero_norms_give_no_nan():
    eta = jnp.asarray(0.1)
    g = jnp.array([1.0, -1.0, 2.0])
    # |x| = 0: the plain step eta g
    np.testing.assert_allclose(fromage_update(jnp.zeros(3), g, eta), -eta * g / jnp.sqrt(1 + eta**2))
    # |g| = 0: no step, only the norm-preserving division
    x = jnp.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(fromage_update(x, jnp.zeros(3), eta), x / jnp.sqrt(1 + eta**2))
    # a solve from x0 = 0 moves off it; one started at the minimiser stops there
    sol = jm.minimize(_target, jnp.zeros(3), jm.Fromage(optax.exponential_decay(0.2, 10, 0.8)),
                      args=(C,), max_steps=2000)
    assert sol.success and bool(jnp.all(jnp.isfinite(sol.x)))
    sol = jm.minimize(_target, C, jm.Fromage(0.1), args=(C,))
    assert sol.success and int(sol.num_steps) == 0


# ----------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: jm.GradientDescent(-0.1), ValueError, "positive"),
        (lambda: jm.GradientDescent(0.0), ValueError, "positive"),
        (lambda: jm.GradientDescent("fast"), TypeError, "schedule"),
        (lambda: jm.GradientDescent(0.1, gtol=-1.0), ValueError, "gtol"),
        (lambda: jm.GradientDescent(0.1, linesearch="zoom"), TypeError, "linesearch"),
        (lambda: jm.OptimisticGradient(0.1, -0.5), ValueError, "optimism"),
        (lambda: jm.Fromage(-1.0), ValueError, "learning_rate"),
    ],
)
def test_invalid_hyperparameters(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_optimism_zero_is_gradient_descent():
    args = _args(jnp.float64)
    og = jm.minimize(_quadratic, X0, jm.OptimisticGradient(0.5, 0.0), args=args)
    gd = jm.minimize(_quadratic, X0, jm.GradientDescent(0.5), args=args)
    np.testing.assert_array_equal(og.x, gd.x)
    assert int(og.num_steps) == int(gd.num_steps)
