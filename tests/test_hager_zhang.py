"""`HagerZhang` alone on 1-D functions (its conditions hold at the returned step, NaN
regions, failures, rounding-level decreases) and as LBFGS's line search on the MGH
problem table, where it must solve every problem `Zoom` solves (test_minimize.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmin as jm
from line_functions import FUNCTIONS as LINE_FUNCTIONS
from line_functions import phi_log, phi_nan_wall, phi_quadratic, phi_quartic

HZ = jm.linesearch.HagerZhang()


FUNCTIONS = {
    **LINE_FUNCTIONS,
    "mt_3": (lambda x: jnp.sum(-jnp.sin(10.0 * x) * 0.05 + 0.5 * (x - 1.0) ** 2), 0.0),
}


def _searcher(fn, search=HZ, dtype=jnp.float64):
    """A compiled `alpha0 -> result` along the descent direction of `fn` at `x0`
    (compiled once per function; alpha0 is traced)."""
    f_and_g = jax.value_and_grad(fn)

    @jax.jit
    def run(x0, alpha0):
        x = jnp.reshape(x0, (1,)).astype(dtype)
        f0, g0 = f_and_g(x)
        p = -jnp.sign(g0)
        return search(f_and_g, x, p, f0, g0, alpha0), (x, p, f0, g0)

    return run


def _conditions(search, f0, dphi0, alpha, f, d):
    """Which of Wolfe and approximate Wolfe hold."""
    delta, sigma = float(search.delta), float(search.sigma)
    curvature = d >= sigma * dphi0
    wolfe = (f - f0 <= delta * alpha * dphi0) and curvature
    approx = (f <= f0 + float(search.epsilon) * abs(f0)) and ((2 * delta - 1) * dphi0 >= d) and curvature
    return wolfe, approx


@pytest.mark.parametrize("name", FUNCTIONS)
def test_conditions_hold(name):
    fn, x0 = FUNCTIONS[name]
    run = _searcher(fn)
    for alpha0 in [1e-3, 1.0, 10.0]:
        res, (x, p, f0, g0) = run(x0, alpha0)
        alpha = float(res.alpha)
        assert bool(res.ok), alpha0
        assert alpha > 0
        # the result is what it claims: f and g at x + alpha p
        f, g = jax.value_and_grad(fn)(x + alpha * p)
        np.testing.assert_allclose(res.f, f, rtol=1e-9, atol=1e-14)
        np.testing.assert_allclose(res.g, g, rtol=1e-9, atol=1e-14)
        wolfe, approx = _conditions(HZ, float(f0), float(jnp.dot(g0, p)), alpha, float(f), float(jnp.dot(g, p)))
        assert wolfe or approx, (alpha0, alpha)
        assert 1 <= int(res.num_evals) <= HZ.max_steps


def test_nan_trial_is_shrunk_not_accepted():
    # from 0 towards +x, a unit step lands in the NaN region (x > 0.6)
    res, _ = _searcher(phi_nan_wall)(0.0, 1.0)
    assert np.isfinite(float(res.f)) and 0 < float(res.alpha) <= 0.6
    # far past the log's pole: the first trial and its expansion are NaN
    res, _ = _searcher(phi_log)(-3.0, 100.0)
    assert bool(res.ok) and np.isfinite(float(res.f)) and float(res.alpha) < 4.0


def test_failure_is_reported():
    # an ascent direction (wrong gradient sign): no step decreases f
    x = jnp.array([1.0])
    f0, g0 = jax.value_and_grad(phi_quadratic)(x)
    res = HZ(jax.value_and_grad(phi_quadratic), x, jnp.sign(g0), f0, -g0, 1.0)
    assert not bool(res.ok)
    assert float(res.f) >= float(f0)
    assert int(res.num_evals) <= HZ.max_steps
    # out of evaluations: the lowest trial is returned if it decreased f
    short = jm.linesearch.HagerZhang(max_steps=1)
    res, (_, _, f0, _) = _searcher(phi_quartic, short)(0.0, 1e-4)
    assert not bool(res.ok) and int(res.num_evals) == 1
    assert float(res.f) < float(f0) and float(res.alpha) == pytest.approx(1e-4)


def test_approximate_wolfe_succeeds_where_f_is_rounded_away():
    # near the minimiser of 1e8 + (x - 0.3)^2, f changes by ~1e-10, below f's rounding
    # (1e8 eps = 1.5e-8): sufficient decrease cannot be verified, slopes still can
    fn = lambda x: jnp.sum(1e8 + (x - 0.3) ** 2)
    res, (x, p, _, _) = _searcher(fn)(0.3 - 1e-5, 1e-5)
    assert bool(res.ok)
    np.testing.assert_allclose(x + res.alpha * p, 0.3, atol=2e-6)
    zoom, _ = _searcher(fn, jm.linesearch.Zoom())(0.3 - 1e-5, 1e-5)
    assert not bool(zoom.ok)


def test_float32_with_traced_float64_hyperparameters():
    search = jm.linesearch.HagerZhang(delta=jnp.asarray(0.1), sigma=jnp.asarray(0.5),
                                      epsilon=jnp.asarray(1e-6))
    res, _ = _searcher(phi_quartic, search, jnp.float32)(0.0, 1.0)
    assert res.alpha.dtype == jnp.float32 and res.g.dtype == jnp.float32
    assert bool(res.ok)


def test_traced_hyperparameters_compile_once():
    x = jnp.array([0.0])
    f_and_g = jax.value_and_grad(phi_quartic)
    f0, g0 = f_and_g(x)

    @jax.jit
    def run(sigma, theta, gamma, rho):
        search = jm.linesearch.HagerZhang(sigma=sigma, theta=theta, gamma=gamma, rho=rho)
        return search(f_and_g, x, -jnp.sign(g0), f0, g0, 1e-3)

    loose = run(jnp.array(0.9), jnp.array(0.5), jnp.array(0.66), jnp.array(5.0))
    tight = run(jnp.array(0.1), jnp.array(0.3), jnp.array(0.5), jnp.array(3.0))
    assert bool(loose.ok) and bool(tight.ok)
    assert float(jnp.dot(tight.g, -jnp.sign(g0))) >= 0.1 * float(jnp.dot(g0, -jnp.sign(g0)))
    assert run._cache_size() == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"delta": 0.6}, "delta"),
        ({"delta": 0.3, "sigma": 0.2}, "sigma"),
        ({"theta": 1.5}, "theta"),
        ({"gamma": 0.0}, "gamma"),
        ({"epsilon": -1.0}, "epsilon"),
        ({"rho": 0.5}, "rho"),
        ({"max_steps": 0}, "max_steps"),
    ],
)
def test_invalid_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        jm.linesearch.HagerZhang(**kwargs)


# ----------------------------------------------------------------------------- MGH table
# the acceptance logic of test_minimize.py::test_mgh_problem_table, which Zoom passes
def test_lbfgs_float32():
    fn = lambda x, a: jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (a - x[:-1]) ** 2)
    sol = jm.minimize(fn, jnp.zeros(4, jnp.float32), jm.LBFGS(linesearch=HZ, gtol=1e-3), args=(1.0,))
    assert int(sol.status) in (jm.Status.CONVERGED, jm.Status.STAGNATED), sol.message
    assert sol.x.dtype == jnp.float32
    np.testing.assert_allclose(sol.x, jnp.ones(4), atol=1e-2)
