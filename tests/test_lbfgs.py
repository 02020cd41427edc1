"""LBFGS pieces alone: the two-loop recursion against a dense BFGS inverse Hessian,
the first step's length, skipped pairs and the failure paths."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmin as jm
from jaxmin.solvers import two_loop


def _dense_inverse_hessian(pairs, gamma, n):
    # N&W eq. 6.17 applied oldest pair first, from H0 = gamma I
    H = gamma * np.eye(n)
    for s, y in pairs:
        rho = 1.0 / (s @ y)
        V = np.eye(n) - rho * np.outer(y, s)
        H = V.T @ H @ V + rho * np.outer(s, s)
    return H


@pytest.mark.parametrize("num_pairs", [0, 1, 3, 5, 8])
def test_two_loop_matches_dense_bfgs(num_pairs):
    rng = np.random.default_rng(num_pairs)
    n, m = 6, 5
    A = rng.normal(size=(n, n))
    A = A @ A.T + n * np.eye(n)  # SPD: y = A s keeps s.y > 0
    pairs = [(s, A @ s) for s in rng.normal(size=(num_pairs, n))]
    kept = pairs[-m:]  # only the newest m are in memory
    s_hist, y_hist, rho = np.zeros((m, n)), np.zeros((m, n)), np.zeros(m)
    for i, (s, y) in enumerate(pairs):  # ring buffer, as LBFGS stores them
        s_hist[i % m], y_hist[i % m], rho[i % m] = s, y, 1 / (s @ y)
    g = rng.normal(size=n)
    gamma = 0.7
    out = two_loop(jnp.asarray(g), jnp.asarray(s_hist), jnp.asarray(y_hist), jnp.asarray(rho),
                   jnp.array(len(pairs), jnp.int32), jnp.asarray(gamma))
    expected = _dense_inverse_hessian(kept, gamma, n) @ g
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


def _quadratic(x, scale):
    return 0.5 * jnp.sum(scale * x**2)


@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e4])
def test_first_step_has_unit_length(scale):
    x0 = jnp.array([3.0, -4.0, 12.0])
    solver = jm.LBFGS(linesearch=jm.linesearch.Backtracking())
    state = solver.init(_quadratic, x0, (scale,))
    x1, state1 = solver.step(_quadratic, x0, state, (scale,))
    # Armijo backtracking from alpha = 1 on the unit direction: the first trial has
    # length exactly 1; later trials halve it
    length = float(jnp.linalg.norm(x1 - x0))
    assert length == pytest.approx(float(state1.alpha))
    assert length <= 1.0 + 1e-12
    if scale == 1e-4:  # flat: the unit trial is accepted as is, no clipping
        assert length == pytest.approx(1.0)
        assert int(state1.ls_evals) == 1


def test_skips_pairs_without_curvature():
    # concave along x: s.y < 0, so the pair must be skipped (H stays positive definite)
    fn = lambda x: -jnp.sum(x[:1] ** 2) + jnp.sum(x[1:] ** 2) + 0.1 * jnp.sum(x[:1] ** 4)
    solver = jm.LBFGS()
    x = jnp.array([0.1, 1.0])
    state = solver.init(fn, x, ())
    x, state = solver.step(fn, x, state, ())
    stored = int(state.k)
    s, y = x - jnp.array([0.1, 1.0]), state.g - jax.grad(fn)(jnp.array([0.1, 1.0]))
    assert stored == int(float(s @ y) > 0)


def test_state_drives_by_hand_like_minimize():
    fn = lambda x: jnp.sum((x - jnp.arange(3.0)) ** 2 * jnp.array([1.0, 10.0, 100.0]))
    solver = jm.LBFGS(gtol=1e-9)
    x = jnp.zeros(3)
    state = solver.init(fn, x, ())
    steps = 0
    while not bool(solver.terminate(state)[0]):
        x, state = solver.step(fn, x, state, ())
        steps += 1
    sol = jm.minimize(fn, jnp.zeros(3), solver)
    np.testing.assert_array_equal(x, sol.x)
    assert steps == int(sol.num_steps)


def test_invalid_hyperparameters():
    with pytest.raises(ValueError, match="history_size"):
        jm.LBFGS(history_size=0)
    with pytest.raises(TypeError, match="linesearch"):
        jm.LBFGS(linesearch="zoom")



_SEARCHES = []


class _CountingZoom(jm.linesearch.Zoom):
    """`Zoom` that records each search it runs (a host callback: also under `jit`)."""

    def __call__(self, *args, **kwargs):
        jax.debug.callback(lambda: _SEARCHES.append(1))
        return super().__call__(*args, **kwargs)


def _rosenbrock_off_grid(x):
    # minimum (1/3, 1/9), f* = 1: no dtype holds it, so the solve ends on a certified
    # first-order stop rather than an exactly zero gradient
    return 1.0 + jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 / 3 - x[:-1]) ** 2)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("solver_type", [jm.LBFGS, jm.NewtonCG])
def test_a_certified_stop_runs_no_line_search(solver_type, dtype):
    _SEARCHES.clear()
    sol = jm.minimize(_rosenbrock_off_grid, jnp.array([-1.2, 1.0], dtype),
                      solver_type(linesearch=_CountingZoom(), gtol=0.0))
    assert int(sol.reason) in (jm.Reason.FTOL, jm.Reason.PRECISION), sol.message
    assert int(sol.num_hvp_evals) > 0  # the last step was the certificate's
    np.testing.assert_allclose(sol.x, [1 / 3, 1 / 9], rtol=1e-3 if dtype == jnp.float32 else 1e-6)
    # every step searched but the last, which certified the stop and stayed put
    assert len(_SEARCHES) == int(sol.num_steps) - 1
