"""Each line search alone on 1-D functions with known answers; Wolfe conditions checked."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmin as jm
from line_functions import FUNCTIONS, phi_log, phi_nan_wall, phi_quadratic, phi_quartic
from jaxmin.linesearch._interpolate import cubic_min

# MoreThuente's default xtol = 0.1 (L-BFGS-B's) stops once the interval is within 10%,
# accepting a decrease without the curvature condition; checking Wolfe needs it tight.
SEARCHES = [
    jm.linesearch.Backtracking(),
    jm.linesearch.Zoom(),
    jm.linesearch.MoreThuente(xtol=1e-10),
]
WOLFE = [s for s in SEARCHES if not isinstance(s, jm.linesearch.Backtracking)]




def _search(search, fn, x0, alpha0):
    x = jnp.array([x0])
    f0, g0 = jax.value_and_grad(fn)(x)
    p = -jnp.sign(g0)
    f_and_g = jax.value_and_grad(fn)
    return jax.jit(lambda x, p: search(f_and_g, x, p, f0, g0, alpha0))(x, p), x, p, f0, g0


@pytest.mark.parametrize("search", SEARCHES, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("alpha0", [1e-3, 1.0, 10.0])
def test_conditions_hold(search, name, alpha0):
    fn, x0 = FUNCTIONS[name]
    res, x, p, f0, g0 = _search(search, fn, x0, alpha0)
    alpha = float(res.alpha)
    assert bool(res.ok)
    assert alpha > 0
    # the result is what it claims: f and g at x + alpha p
    f, g = jax.value_and_grad(fn)(x + alpha * p)
    np.testing.assert_allclose(res.f, f, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(res.g, g, rtol=1e-9, atol=1e-14)
    dphi0 = float(jnp.dot(g0, p))
    c1 = float(search.c1)
    assert float(f) <= float(f0) + c1 * alpha * dphi0  # Armijo
    if not isinstance(search, jm.linesearch.Backtracking):
        assert abs(float(jnp.dot(g, p))) <= float(search.c2) * abs(dphi0) + 1e-12  # strong Wolfe
    assert 1 <= int(res.num_evals) <= search.max_steps


@pytest.mark.parametrize("search", SEARCHES, ids=lambda s: type(s).__name__)
def test_nan_trial_is_shrunk_not_accepted(search):
    # from 0.0 towards +x, a unit step lands in the NaN region (x > 0.6)
    res, *_ = _search(search, phi_nan_wall, 0.0, 1.0)
    assert np.isfinite(float(res.f))
    assert 0 < float(res.alpha) <= 0.6
    res, *_ = _search(search, phi_log, -3.0, 100.0)  # lands far past the log's pole
    assert np.isfinite(float(res.f)) and float(res.alpha) < 4.0 and bool(res.ok)


@pytest.mark.parametrize("search", SEARCHES, ids=lambda s: type(s).__name__)
def test_failure_is_reported(search):
    # an ascent direction (wrong gradient sign): no step decreases f
    x = jnp.array([1.0])
    fn = phi_quadratic
    f0, g0 = jax.value_and_grad(fn)(x)
    p = jnp.sign(g0)  # uphill
    res = search(jax.value_and_grad(fn), x, p, f0, -g0, 1.0)
    assert not bool(res.ok)
    assert float(res.f) >= float(f0)
    assert int(res.num_evals) <= search.max_steps


@pytest.mark.parametrize("search", WOLFE, ids=lambda s: type(s).__name__)
def test_wolfe_on_rosenbrock_direction(search):
    # a 2-D line search along steepest descent, Wolfe conditions checked
    fn = lambda z: (1.0 - z[0]) ** 2 + 100.0 * (z[1] - z[0] ** 2) ** 2
    x = jnp.array([-1.2, 1.0])
    f0, g0 = jax.value_and_grad(fn)(x)
    p = -g0 / jnp.linalg.norm(g0)
    res = search(jax.value_and_grad(fn), x, p, f0, g0, 1.0)
    dphi0 = float(jnp.dot(g0, p))
    assert bool(res.ok)
    assert float(res.f) <= float(f0) + float(search.c1) * float(res.alpha) * dphi0
    assert abs(float(jnp.dot(res.g, p))) <= float(search.c2) * abs(dphi0)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_zoom_gives_up_at_once_where_no_decrease_is_resolvable(dtype):
    """A long direction from just off a quadratic's minimum (as rounding makes one, e.g.
    an L-BFGS pair from a step f could not resolve): the best decrease along it,
    K delta^2 / 2, lies far below f's rounding. Zoom stops after the first trial instead
    of halving the step until the bracket's linear model runs out; a decrease that f
    resolves past a quartic wall is still found."""
    K, c0 = 1e5, 1e5
    delta = 1e-12 if dtype == jnp.float64 else 1e-7
    fn = lambda z: c0 + 0.5 * K * jnp.sum(z**2)
    x = jnp.array([delta], dtype)
    f0, g0 = jax.value_and_grad(fn)(x)
    p = -jnp.ones(1, dtype)
    zoom = jm.linesearch.Zoom()
    res = zoom(jax.value_and_grad(fn), x, p, f0, g0, 1.0)
    assert not bool(res.ok) and int(res.num_evals) == 1
    assert not float(res.f) < float(f0)
    # a real decrease behind a first trial far up a quartic wall: not hopeless
    wall = lambda z: 1.0 - 1e-2 * z[0] + 1e4 * z[0] ** 4
    x = jnp.zeros(1, dtype)
    f0, g0 = jax.value_and_grad(wall)(x)
    res = zoom(jax.value_and_grad(wall), x, jnp.ones(1, dtype), f0, g0, 1.0)
    assert bool(res.ok) and float(res.f) < float(f0)


def test_traced_hyperparameters():
    # c1/c2 as arrays: one compilation serves many values
    fn = phi_quartic
    x = jnp.array([0.0])
    f0, g0 = jax.value_and_grad(fn)(x)

    @jax.jit
    def run(c2):
        return jm.linesearch.Zoom(c1=1e-4, c2=c2)(jax.value_and_grad(fn), x, -jnp.sign(g0), f0, g0, 1.0)

    loose, tight = run(jnp.array(0.9)), run(jnp.array(0.01))
    assert bool(loose.ok) and bool(tight.ok)
    _, g = jax.value_and_grad(fn)(x + tight.alpha * -jnp.sign(g0))
    assert abs(float(g[0])) <= 0.01 * abs(float(g0[0]))
    assert run._cache_size() == 1


def test_more_thuente_default_xtol_accepts_decrease():
    # L-BFGS-B's setting: a 10% interval ends the search with the best step so far
    fn, x0 = FUNCTIONS["mt_2"]
    res, x, p, f0, g0 = _search(jm.linesearch.MoreThuente(), fn, x0, 1.0)
    assert float(res.f) < float(f0)
    assert abs(float(res.alpha) - 1.596) < 0.1 * 1.596


def test_interpolants():
    # cubic through f = (t - 1)^3 - 3 (t - 1)... matches a true cubic's minimiser
    f = lambda t: t**3 - 3.0 * t  # minimiser at t = 1
    df = lambda t: 3.0 * t**2 - 3.0
    a, b = 0.0, 3.0
    np.testing.assert_allclose(cubic_min(a, f(a), df(a), b, f(b), df(b)), 1.0, rtol=1e-12)
    # f' = 3 t^2 + 1 > 0: the cubic t^3 + t has no minimiser
    g = lambda t: t**3 + t
    assert np.isnan(cubic_min(0.0, g(0.0), 1.0, 1.0, g(1.0), 4.0))


def test_invalid_hyperparameters():
    with pytest.raises(ValueError, match="c1 < c2"):
        jm.linesearch.Zoom(c1=0.9, c2=0.1)
    with pytest.raises(ValueError, match="shrink"):
        jm.linesearch.Backtracking(shrink=1.5)
    with pytest.raises(ValueError, match="c1 < c2"):
        jm.linesearch.MoreThuente(c1=0.5, c2=0.4)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_packed_scalars_are_the_scalars_in_order(dtype):
    # the searches carry their scalars packed (`_misc.pack_scalars`): the vector must be
    # exactly `jnp.stack` of them, traced or not, batched or not, infinities and NaN kept
    from jaxmin._misc import pack_scalars

    values = jnp.array([1.5, -jnp.inf, jnp.nan, 0.0, -0.0, 3e38, jnp.inf, 7.25], dtype)
    for k in (1, 2, 8):
        expect = np.asarray(values[:k])
        np.testing.assert_array_equal(np.asarray(pack_scalars(*values[:k])), expect)
        packed = jax.jit(lambda v, k=k: pack_scalars(*(v[i] for i in range(k))))(values)
        np.testing.assert_array_equal(np.asarray(packed), expect)
        assert packed.dtype == dtype
    batch = jnp.stack([values, -values])
    packed = jax.vmap(lambda v: pack_scalars(*(v[i] for i in range(8))))(batch)
    np.testing.assert_array_equal(np.asarray(packed), np.asarray(batch))
    # Moré-Thuente packs its flags the same way
    flags = jax.jit(lambda v: pack_scalars(v[0] > 0, v[1] > 0, v[2] == v[2], v[3] == 0))(values)
    assert flags.dtype == jnp.bool_
    np.testing.assert_array_equal(np.asarray(flags), [True, False, False, True])
