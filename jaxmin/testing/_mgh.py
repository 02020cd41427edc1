"""A subset of the unconstrained test problems of Moré, Garbow & Hillstrom (MGH).

J. J. Moré, B. S. Garbow and K. E. Hillstrom, "Testing Unconstrained Optimization
Software", ACM Trans. Math. Softw. 7(1):17-41, 1981.

Eighteen of the 35 problems, each from its standard start, chosen so that a local
method started there reaches the published optimum: every one is a sum of squares
`f = sum_i r_i(x)^2`, and each `fn` keeps its residual form as `fn.residuals(x)` (an
array, or a tuple of arrays: the terms MGH sum). `f_star` is the value MGH publish (six
digits) except where the NIST StRD nonlinear-regression suite certifies the same problem (MGH09 = Kowalik-
Osborne, MGH17 = Osborne 1; eleven digits). `x_star` is given where the minimiser is
unique and published (Jennrich-Sampson's: MGH's four digits refined to float64).
Written in `jax.numpy` with Python-float literals and data in x's dtype, so each runs
in float32 and float64 under strict dtype and rank promotion. The data live in NumPy
float64; `problem.astype(dtype)` makes JAX arrays.
"""

import functools
import math

import jax.numpy as jnp
import numpy as np

from ._problem import Problem


def _const(values, x):
    return jnp.asarray(np.asarray(values, dtype=np.float64), dtype=x.dtype)


def _idx(lo, hi, x):
    return jnp.arange(lo, hi + 1, dtype=x.dtype)


def _sumsq(r):
    return jnp.sum(r * r)


def _sum_of_squares(residuals):
    """The MGH objective `sum_i r_i(x)^2` of `residuals(x)` (an array, or a tuple of
    arrays whose squares are summed in order), with the residual form kept as its
    attribute `residuals`, for least-squares solvers (`jm.least_squares(fn.residuals,
    x0)`; `f = 2 sol.fun`)."""

    @functools.wraps(residuals)
    def fn(x, *args, **kwargs):
        r = residuals(x, *args, **kwargs)
        parts = r if isinstance(r, tuple) else (r,)
        f = _sumsq(parts[0])
        for part in parts[1:]:
            f = f + _sumsq(part)
        return f

    fn.residuals = residuals
    return fn


_BARD_Y = (0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58, 0.73, 0.96, 1.34, 2.10, 4.39)
_GAUSSIAN_Y = (0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989, 0.3521, 0.2420,
               0.1295, 0.0540, 0.0175, 0.0044, 0.0009)
_KOWALIK_Y = (0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323, 0.0235, 0.0246)
_KOWALIK_U = (4.0, 2.0, 1.0, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625)
_OSBORNE1_Y = (0.844, 0.908, 0.932, 0.936, 0.925, 0.908, 0.881, 0.850, 0.818, 0.784, 0.751, 0.718,
               0.685, 0.658, 0.628, 0.603, 0.580, 0.558, 0.538, 0.522, 0.506, 0.490, 0.478, 0.467,
               0.457, 0.448, 0.438, 0.431, 0.424, 0.420, 0.414, 0.411, 0.406)


@_sum_of_squares
def rosenbrock(x):
    """MGH #1: n = 2, m = 2."""
    return jnp.stack([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])


@_sum_of_squares
def beale(x):
    """MGH #5: n = 2, m = 3."""
    r = _const([1.5, 2.25, 2.625], x) - x[0] * (1.0 - x[1] ** _idx(1, 3, x))
    return r


@_sum_of_squares
def jennrich_sampson(x):
    """MGH #6: n = 2, m = 10."""
    i = _idx(1, 10, x)
    return 2.0 + 2.0 * i - (jnp.exp(i * x[0]) + jnp.exp(i * x[1]))


@_sum_of_squares
def helical_valley(x):
    """MGH #7: n = 3, m = 3 (theta's x1 = 0 limit with a safe division)."""
    x1, x2, x3 = x[0], x[1], x[2]
    base = jnp.arctan(x2 / jnp.where(x1 == 0.0, 1.0, x1)) / (2.0 * math.pi)
    theta = jnp.where(x1 > 0.0, base, jnp.where(x1 < 0.0, base + 0.5, 0.25 * jnp.sign(x2)))
    r = jnp.stack([10.0 * (x3 - 10.0 * theta), 10.0 * (jnp.sqrt(x1**2 + x2**2) - 1.0), x3])
    return r


@_sum_of_squares
def bard(x):
    """MGH #8: n = 3, m = 15."""
    u = _idx(1, 15, x)
    v = 16.0 - u
    return _const(_BARD_Y, x) - (x[0] + u / (v * x[1] + jnp.minimum(u, v) * x[2]))


@_sum_of_squares
def gaussian(x):
    """MGH #9: n = 3, m = 15."""
    t = (8.0 - _idx(1, 15, x)) / 2.0
    return x[0] * jnp.exp(-x[1] * (t - x[2]) ** 2 / 2.0) - _const(_GAUSSIAN_Y, x)


@_sum_of_squares
def box_3d(x):
    """MGH #12: n = 3, m = 10."""
    t = 0.1 * _idx(1, 10, x)
    return jnp.exp(-t * x[0]) - jnp.exp(-t * x[1]) - x[2] * (jnp.exp(-t) - jnp.exp(-10.0 * t))


@_sum_of_squares
def powell_singular(x):
    """MGH #13: n = 4, m = 4 (singular Hessian at x*)."""
    r = jnp.stack([
        x[0] + 10.0 * x[1], math.sqrt(5.0) * (x[2] - x[3]),
        (x[1] - 2.0 * x[2]) ** 2, math.sqrt(10.0) * (x[0] - x[3]) ** 2,
    ])
    return r


@_sum_of_squares
def wood(x):
    """MGH #14: n = 4, m = 6."""
    r = jnp.stack([
        10.0 * (x[1] - x[0] ** 2), 1.0 - x[0], math.sqrt(90.0) * (x[3] - x[2] ** 2), 1.0 - x[2],
        math.sqrt(10.0) * (x[1] + x[3] - 2.0), (x[1] - x[3]) / math.sqrt(10.0),
    ])
    return r


@_sum_of_squares
def kowalik_osborne(x):
    """MGH #15: n = 4, m = 11."""
    u = _const(_KOWALIK_U, x)
    return _const(_KOWALIK_Y, x) - x[0] * (u**2 + u * x[1]) / (u**2 + u * x[2] + x[3])


@_sum_of_squares
def brown_dennis(x):
    """MGH #16: n = 4, m = 20."""
    t = _idx(1, 20, x) / 5.0
    return (x[0] + t * x[1] - jnp.exp(t)) ** 2 + (x[2] + x[3] * jnp.sin(t) - jnp.cos(t)) ** 2


@_sum_of_squares
def osborne1(x):
    """MGH #17: n = 5, m = 33."""
    t = 10.0 * _idx(0, 32, x)
    return _const(_OSBORNE1_Y, x) - (x[0] + x[1] * jnp.exp(-t * x[3]) + x[2] * jnp.exp(-t * x[4]))


@_sum_of_squares
def watson(x):
    """MGH #20: n = 6 here, m = 31."""
    n = x.shape[0]
    t = _idx(1, 29, x) / 29.0
    j = _idx(1, n, x)
    powers = t[:, None] ** (j - 1.0)[None, :]
    r = powers[:, : n - 1] @ ((j[1:] - 1.0) * x[1:]) - (powers @ x) ** 2 - 1.0
    return r, jnp.stack([x[0], x[1] - x[0] ** 2 - 1.0])


@_sum_of_squares
def extended_rosenbrock(x):
    """MGH #21: n even (10 here), m = n."""
    odd, even = x[0::2], x[1::2]
    return 10.0 * (even - odd**2), 1.0 - odd


@_sum_of_squares
def extended_powell(x):
    """MGH #22: n a multiple of 4 (8 here), m = n (singular Hessian at x*)."""
    x1, x2, x3, x4 = x[0::4], x[1::4], x[2::4], x[3::4]
    return (x1 + 10.0 * x2, math.sqrt(5.0) * (x3 - x4), (x2 - 2.0 * x3) ** 2,
            math.sqrt(10.0) * (x1 - x4) ** 2)


@_sum_of_squares
def variably_dimensioned(x):
    """MGH #25: n = 10 here, m = n + 2."""
    s = jnp.sum(_idx(1, x.shape[0], x) * (x - 1.0))
    return x - 1.0, s, s**2


@_sum_of_squares
def broyden_tridiagonal(x):
    """MGH #30: n = 10 here, m = n, x_0 = x_(n+1) = 0."""
    zero = jnp.zeros((1,), dtype=x.dtype)
    left, right = jnp.concatenate([zero, x[:-1]]), jnp.concatenate([x[1:], zero])
    return (3.0 - 2.0 * x) * x - left - 2.0 * right + 1.0


@_sum_of_squares
def linear_full_rank(x, m=20):
    """MGH #32: n = 10 here, m = 20; f* = m - n."""
    n = x.shape[0]
    s = jnp.sum(x)
    return x - 2.0 * s / m - 1.0, jnp.full((m - n,), -2.0 * s / m - 1.0)


def _a(*values):
    return np.asarray(values, dtype=np.float64)


def _p(name, fn, x0, f_star, x_star, source):
    return Problem(name=name, fn=fn, x0=np.asarray(x0, np.float64), f_star=f_star,
                   x_star=None if x_star is None else np.asarray(x_star, np.float64), source=source)


MGH_PROBLEMS: tuple[Problem, ...] = (
    _p("rosenbrock", rosenbrock, _a(-1.2, 1.0), 0.0, _a(1.0, 1.0), "MGH #1"),
    _p("beale", beale, _a(1.0, 1.0), 0.0, _a(3.0, 0.5), "MGH #5"),
    _p("jennrich_sampson", jennrich_sampson, _a(0.3, 0.4), 124.362,
       _a(0.2578252136703641, 0.2578252136703641), "MGH #6 (m = 10)"),
    _p("helical_valley", helical_valley, _a(-1.0, 0.0, 0.0), 0.0, _a(1.0, 0.0, 0.0), "MGH #7"),
    _p("bard", bard, _a(1.0, 1.0, 1.0), 8.21487e-3, None, "MGH #8"),
    _p("gaussian", gaussian, _a(0.4, 1.0, 0.0), 1.12793e-8, None, "MGH #9"),
    _p("box_3d", box_3d, _a(0.0, 10.0, 20.0), 0.0, None, "MGH #12 (zero at (1, 10, 1) and elsewhere)"),
    _p("powell_singular", powell_singular, _a(3.0, -1.0, 0.0, 1.0), 0.0, np.zeros(4), "MGH #13"),
    _p("wood", wood, _a(-3.0, -1.0, -3.0, -1.0), 0.0, np.ones(4), "MGH #14"),
    _p("kowalik_osborne", kowalik_osborne, _a(0.25, 0.39, 0.415, 0.39), 3.0750560385e-04,
       _a(1.9280693458e-01, 1.9128232873e-01, 1.2305650693e-01, 1.3606233068e-01),
       "MGH #15; x*, f* certified by NIST StRD (MGH09)"),
    _p("brown_dennis", brown_dennis, _a(25.0, 5.0, -5.0, -1.0), 85822.2, None, "MGH #16 (m = 20)"),
    _p("osborne1", osborne1, _a(0.5, 1.5, -1.0, 0.01, 0.02), 5.4648946975e-05,
       _a(3.7541005211e-01, 1.9358469127e+00, -1.4646871366e+00, 1.2867534640e-02, 2.2122699662e-02),
       "MGH #17; x*, f* certified by NIST StRD (MGH17)"),
    _p("watson6", watson, np.zeros(6), 2.28767e-3, None, "MGH #20 (n = 6)"),
    _p("extended_rosenbrock10", extended_rosenbrock, np.tile(_a(-1.2, 1.0), 5), 0.0, np.ones(10),
       "MGH #21 (n = 10)"),
    _p("extended_powell8", extended_powell, np.tile(_a(3.0, -1.0, 0.0, 1.0), 2), 0.0, np.zeros(8),
       "MGH #22 (n = 8)"),
    _p("variably_dimensioned10", variably_dimensioned, 1.0 - np.arange(1.0, 11.0) / 10.0, 0.0,
       np.ones(10), "MGH #25 (n = 10)"),
    _p("broyden_tridiagonal10", broyden_tridiagonal, np.full(10, -1.0), 0.0, None, "MGH #30 (n = 10)"),
    _p("linear_full_rank10", linear_full_rank, np.ones(10), 10.0, np.full(10, -1.0),
       "MGH #32 (n = 10, m = 20): f* = m - n"),
)
