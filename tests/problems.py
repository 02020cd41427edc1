"""Unconstrained test problems of Moré, Garbow & Hillstrom (MGH).

J. J. Moré, B. S. Garbow and K. E. Hillstrom, "Testing Unconstrained
Optimization Software", ACM Trans. Math. Softw. 7(1):17-41, 1981.

Every problem is a sum of squares ``f(x) = sum_i r_i(x)**2`` (the MGH
definition), written in ``jax.numpy`` so that it runs in float32 and float64
under ``jax_numpy_dtype_promotion="strict"`` and
``jax_numpy_rank_promotion="raise"``: literals are Python floats (weakly
typed), constant arrays are built with ``dtype=x.dtype`` and broadcasting
between arrays is always explicit.

Optimal values ``f_star`` are the ones published by MGH (six significant
digits) unless stated otherwise; where the NIST StRD nonlinear-regression
suite certifies the same problem (MGH09 = Kowalik-Osborne, MGH10 = Meyer,
MGH17 = Osborne 1) its eleven-digit certified values are used for both
``f_star`` and ``x_star``.  ``x_star`` is given only where the minimiser is
unique and published; for minimisers MGH quote to a few
digits only (e.g. Powell badly scaled, Jennrich-Sampson) the value here is
the same point refined to float64 precision, and agrees with every
published digit.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax.numpy as jnp
import numpy as np

__all__ = ["Problem", "PROBLEMS", "by_name", "shared"]


@dataclasses.dataclass(frozen=True)
class Problem:
    name: str
    fn: Callable
    x0: np.ndarray
    f_star: float
    x_star: np.ndarray | None
    args: tuple = ()
    source: str = ""
    f_alternatives: tuple = ()
    hard: bool = False

    @property
    def n(self) -> int:
        return int(self.x0.shape[0])


def _arr(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


# constant data in x's dtype, index ranges, sums of squares: the library's bundled
# MGH problems (`jm.testing`) are written with the same helpers
from jaxmin.testing._mgh import _const, _idx, _sumsq  # noqa: E402

# the problems whose arithmetic is the same as the library's bundled MGH problems
# (`jm.testing.MGH_PROBLEMS`) are those functions, imported (with their data)
from jaxmin.testing._mgh import _GAUSSIAN_Y, _OSBORNE1_Y  # noqa: E402, F401 (read by test_problems)
from jaxmin.testing._mgh import (  # noqa: E402
    box_3d, broyden_tridiagonal, brown_dennis, extended_powell, extended_rosenbrock, gaussian,
    helical_valley, jennrich_sampson, osborne1, powell_singular, rosenbrock, variably_dimensioned,
    wood,
)


# --------------------------------------------------------------------------
# Data sets (as printed in MGH).
# --------------------------------------------------------------------------

_BARD_Y = (0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58,
           0.73, 0.96, 1.34, 2.10, 4.39)

_MEYER_Y = (34780.0, 28610.0, 23650.0, 19630.0, 16370.0, 13720.0, 11540.0,
            9744.0, 8261.0, 7030.0, 6005.0, 5147.0, 4427.0, 3820.0, 3307.0,
            2872.0)

_KOWALIK_Y = (0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456,
              0.0342, 0.0323, 0.0235, 0.0246)
_KOWALIK_U = (4.0, 2.0, 1.0, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714,
              0.0625)

_OSBORNE2_Y = (1.366, 1.191, 1.112, 1.013, 0.991, 0.885, 0.831, 0.847,
               0.786, 0.725, 0.746, 0.679, 0.608, 0.655, 0.616, 0.606,
               0.602, 0.626, 0.651, 0.724, 0.649, 0.649, 0.694, 0.644,
               0.624, 0.661, 0.612, 0.558, 0.533, 0.495, 0.500, 0.423,
               0.395, 0.375, 0.372, 0.391, 0.396, 0.405, 0.428, 0.429,
               0.523, 0.562, 0.607, 0.653, 0.672, 0.708, 0.633, 0.668,
               0.645, 0.632, 0.591, 0.559, 0.597, 0.625, 0.739, 0.710,
               0.729, 0.720, 0.636, 0.581, 0.428, 0.292, 0.162, 0.098,
               0.054)


# --------------------------------------------------------------------------
# Problems.
# --------------------------------------------------------------------------

def freudenstein_roth(x):
    """MGH #2, Freudenstein and Roth: n=2, m=2."""
    x1, x2 = x[0], x[1]
    r = jnp.stack([
        -13.0 + x1 + ((5.0 - x2) * x2 - 2.0) * x2,
        -29.0 + x1 + ((x2 + 1.0) * x2 - 14.0) * x2,
    ])
    return _sumsq(r)


def powell_badly_scaled(x):
    """MGH #3, Powell badly scaled: n=2, m=2."""
    r = jnp.stack([
        1.0e4 * x[0] * x[1] - 1.0,
        jnp.exp(-x[0]) + jnp.exp(-x[1]) - 1.0001,
    ])
    return _sumsq(r)


def brown_badly_scaled(x):
    """MGH #4, Brown badly scaled: n=2, m=3."""
    r = jnp.stack([x[0] - 1.0e6, x[1] - 2.0e-6, x[0] * x[1] - 2.0])
    return _sumsq(r)


def beale(x):
    """MGH #5, Beale: n=2, m=3."""
    y = _const([1.5, 2.25, 2.625], x)
    i = _idx(1, 3, x)
    r = y - x[0] * (1.0 - x[1] ** i)
    return _sumsq(r)


def bard(x):
    """MGH #8, Bard: n=3, m=15."""
    y = _const(_BARD_Y, x)
    u = _idx(1, 15, x)
    v = 16.0 - u
    w = jnp.minimum(u, v)
    r = y - (x[0] + u / (v * x[1] + w * x[2]))
    return _sumsq(r)


def meyer(x):
    """MGH #10, Meyer: n=3, m=16."""
    y = _const(_MEYER_Y, x)
    t = 45.0 + 5.0 * _idx(1, 16, x)
    r = x[0] * jnp.exp(x[1] / (t + x[2])) - y
    return _sumsq(r)


def gulf(x, m=99):
    """MGH #11, Gulf research and development: n=3, m=99.

    r_i = exp(-|y_i - x2|**x3 / x1) - t_i, t_i = i/100,
    y_i = 25 + (-50 log t_i)**(2/3).
    """
    t = _idx(1, m, x) / 100.0
    y = 25.0 + (-50.0 * jnp.log(t)) ** (2.0 / 3.0)
    r = jnp.exp(-(jnp.abs(y - x[1]) ** x[2]) / x[0]) - t
    return _sumsq(r)


def kowalik_osborne(x):
    """MGH #15, Kowalik and Osborne: n=4, m=11."""
    y = _const(_KOWALIK_Y, x)
    u = _const(_KOWALIK_U, x)
    r = y - x[0] * (u ** 2 + u * x[1]) / (u ** 2 + u * x[2] + x[3])
    return _sumsq(r)


def biggs_exp6(x, m=13):
    """MGH #18, Biggs EXP6: n=6, m=13."""
    t = 0.1 * _idx(1, m, x)
    y = jnp.exp(-t) - 5.0 * jnp.exp(-10.0 * t) + 3.0 * jnp.exp(-4.0 * t)
    r = (x[2] * jnp.exp(-t * x[0]) - x[3] * jnp.exp(-t * x[1])
         + x[5] * jnp.exp(-t * x[4]) - y)
    return _sumsq(r)


def osborne2(x):
    """MGH #19, Osborne 2: n=11, m=65."""
    y = _const(_OSBORNE2_Y, x)
    t = _idx(0, 64, x) / 10.0
    r = y - (x[0] * jnp.exp(-t * x[4])
             + x[1] * jnp.exp(-((t - x[8]) ** 2) * x[5])
             + x[2] * jnp.exp(-((t - x[9]) ** 2) * x[6])
             + x[3] * jnp.exp(-((t - x[10]) ** 2) * x[7]))
    return _sumsq(r)


def watson(x):
    """MGH #20, Watson: n variable (2 <= n <= 31), m=31."""
    n = x.shape[0]
    t = _idx(1, 29, x) / 29.0                        # (29,)
    j = _idx(1, n, x)                                # (n,)
    # powers[i, j-1] = t_i ** (j - 1)
    powers = t[:, None] ** (j - 1.0)[None, :]        # (29, n)
    s1 = powers[:, : n - 1] @ ((j[1:] - 1.0) * x[1:])  # sum_{j>=2} (j-1) x_j t^(j-2)
    s2 = powers @ x                                  # sum_j x_j t^(j-1)
    r = s1 - s2 ** 2 - 1.0
    r_extra = jnp.stack([x[0], x[1] - x[0] ** 2 - 1.0])
    return _sumsq(r) + _sumsq(r_extra)


def penalty1(x):
    """MGH #23, penalty function I: n variable, m=n+1, a=1e-5."""
    a = 1.0e-5
    r_last = jnp.sum(x ** 2) - 0.25
    return _sumsq(math.sqrt(a) * (x - 1.0)) + r_last ** 2


def penalty2(x):
    """MGH #24, penalty function II: n variable, m=2n, a=1e-5."""
    n = x.shape[0]
    sa = math.sqrt(1.0e-5)
    i = _idx(2, n, x)
    y = jnp.exp(i / 10.0) + jnp.exp((i - 1.0) / 10.0)
    e = jnp.exp(x / 10.0)
    r_first = x[0] - 0.2
    r_mid = sa * (e[1:] + e[:-1] - y)                # i = 2..n
    r_tail = sa * (e[1:] - math.exp(-0.1))          # i = n+1..2n-1
    w = n - _idx(1, n, x) + 1.0                      # n - j + 1
    r_last = jnp.sum(w * x ** 2) - 1.0
    return r_first ** 2 + _sumsq(r_mid) + _sumsq(r_tail) + r_last ** 2


def trigonometric(x):
    """MGH #26, trigonometric: n variable, m=n."""
    n = x.shape[0]
    i = _idx(1, n, x)
    r = n - jnp.sum(jnp.cos(x)) + i * (1.0 - jnp.cos(x)) - jnp.sin(x)
    return _sumsq(r)


def brown_almost_linear(x):
    """MGH #27, Brown almost-linear: n variable, m=n."""
    n = x.shape[0]
    r = x[:-1] + jnp.sum(x) - (n + 1.0)
    r_last = jnp.prod(x) - 1.0
    return _sumsq(r) + r_last ** 2


def _grid(x):
    n = x.shape[0]
    h = 1.0 / (n + 1.0)
    return h, _idx(1, n, x) * h


def discrete_boundary_value(x):
    """MGH #28, discrete boundary value: n variable, m=n, x_0 = x_{n+1} = 0."""
    h, t = _grid(x)
    zero = jnp.zeros((1,), dtype=x.dtype)
    left = jnp.concatenate([zero, x[:-1]])
    right = jnp.concatenate([x[1:], zero])
    r = 2.0 * x - left - right + h ** 2 * (x + t + 1.0) ** 3 / 2.0
    return _sumsq(r)


def discrete_integral_equation(x):
    """MGH #29, discrete integral equation: n variable, m=n."""
    n = x.shape[0]
    h, t = _grid(x)
    c = (x + t + 1.0) ** 3
    lower = jnp.tril(jnp.ones((n, n), dtype=x.dtype))   # j <= i
    kernel = ((1.0 - t)[:, None] * t[None, :] * lower
              + t[:, None] * (1.0 - t)[None, :] * (1.0 - lower))
    r = x + h * (kernel @ c) / 2.0
    return _sumsq(r)


def broyden_banded(x, ml=5, mu=1):
    """MGH #31, Broyden banded: n variable, m=n, ml=5, mu=1."""
    n = x.shape[0]
    i = jnp.arange(n)[:, None]
    j = jnp.arange(n)[None, :]
    band = (j != i) & (j >= i - ml) & (j <= i + mu)
    band = band.astype(x.dtype)
    r = x * (2.0 + 5.0 * x ** 2) + 1.0 - band @ (x * (1.0 + x))
    return _sumsq(r)


def linear_full_rank(x, m=20):
    """MGH #32, linear function - full rank: n variable, m >= n."""
    n = x.shape[0]
    s = jnp.sum(x)
    r_head = x - 2.0 * s / m - 1.0                   # i = 1..n
    r_tail = -2.0 * s / m - 1.0                      # i = n+1..m (all equal)
    return _sumsq(r_head) + (m - n) * r_tail ** 2


# --------------------------------------------------------------------------
# Table.
# --------------------------------------------------------------------------

def _h_grid_start(n):
    t = np.arange(1, n + 1, dtype=np.float64) / (n + 1)
    return t * (t - 1.0)


PROBLEMS: list[Problem] = [
    Problem("rosenbrock", rosenbrock, _arr([-1.2, 1.0]), 0.0,
            _arr([1.0, 1.0]), source="MGH #1"),
    Problem("freudenstein_roth", freudenstein_roth, _arr([0.5, -2.0]), 0.0,
            _arr([5.0, 4.0]), source="MGH #2",
            # local minimum at (11.41..., -0.8968...)
            f_alternatives=(48.9842,)),
    Problem("powell_badly_scaled", powell_badly_scaled, _arr([0.0, 1.0]),
            0.0,
            # MGH: (1.098...e-5, 9.106...); refined root of r = 0.
            _arr([1.0981593296998175e-05, 9.106146739866524]),
            source="MGH #3",
            # Hessian condition ~1e17 at x*: unscaled quasi-Newton methods
            # (e.g. SciPy L-BFGS-B, CG) stall short of f* = 0.
            hard=True),
    Problem("brown_badly_scaled", brown_badly_scaled, _arr([1.0, 1.0]), 0.0,
            _arr([1.0e6, 2.0e-6]), source="MGH #4"),
    Problem("beale", beale, _arr([1.0, 1.0]), 0.0, _arr([3.0, 0.5]),
            source="MGH #5"),
    Problem("jennrich_sampson", jennrich_sampson, _arr([0.3, 0.4]), 124.362,
            # MGH: x1 = x2 = 0.2578...; refined stationary point.
            _arr([0.2578252136703641, 0.2578252136703641]),
            source="MGH #6 (m=10)"),
    Problem("helical_valley", helical_valley, _arr([-1.0, 0.0, 0.0]), 0.0,
            _arr([1.0, 0.0, 0.0]), source="MGH #7"),
    Problem("bard", bard, _arr([1.0, 1.0, 1.0]), 8.21487e-3, None,
            source="MGH #8",
            # (0.8406..., -inf, -inf)
            f_alternatives=(17.4286,)),
    Problem("gaussian", gaussian, _arr([0.4, 1.0, 0.0]), 1.12793e-8, None,
            source="MGH #9"),
    Problem("meyer", meyer, _arr([0.02, 4000.0, 250.0]), 87.945855171,
            _arr([5.6096364710e-03, 6.1813463463e+03, 3.4522363462e+02]),
            source="MGH #10 (f*=87.9458); x*, f* certified by NIST StRD MGH10",
            # residuals ~1e4, x2 ~ 6e3, Hessian condition ~1e16 at x*:
            # e.g. SciPy L-BFGS-B stops near f = 143.9 from x0.
            hard=True),
    Problem("gulf", gulf, _arr([5.0, 2.5, 0.15]), 0.0,
            _arr([50.0, 25.0, 1.5]), source="MGH #11 (m=99)"),
    Problem("box_3d", box_3d, _arr([0.0, 10.0, 20.0]), 0.0,
            # zero at (1, 10, 1), (10, 1, -1) and on x1 = x2, x3 = 0
            None, source="MGH #12 (m=10)"),
    Problem("powell_singular", powell_singular, _arr([3.0, -1.0, 0.0, 1.0]),
            0.0, np.zeros(4), source="MGH #13"),
    Problem("wood", wood, _arr([-3.0, -1.0, -3.0, -1.0]), 0.0, np.ones(4),
            source="MGH #14"),
    Problem("kowalik_osborne", kowalik_osborne,
            _arr([0.25, 0.39, 0.415, 0.39]), 3.0750560385e-04,
            _arr([1.9280693458e-01, 1.9128232873e-01, 1.2305650693e-01,
                  1.3606233068e-01]),
            source="MGH #15 (f*=3.07505e-4); x*, f* certified by NIST StRD MGH09",
            # (+inf, -14.07..., -inf, -inf)
            f_alternatives=(1.02734e-3,)),
    Problem("brown_dennis", brown_dennis, _arr([25.0, 5.0, -5.0, -1.0]),
            85822.2, None, source="MGH #16 (m=20)"),
    Problem("osborne1", osborne1, _arr([0.5, 1.5, -1.0, 0.01, 0.02]),
            5.4648946975e-05,
            _arr([3.7541005211e-01, 1.9358469127e+00, -1.4646871366e+00,
                  1.2867534640e-02, 2.2122699662e-02]),
            source="MGH #17 (f*=5.46489e-5); x*, f* certified by NIST StRD MGH17"),
    Problem("biggs_exp6", biggs_exp6, _arr([1.0, 2.0, 1.0, 1.0, 1.0, 1.0]),
            0.0,
            # zero at (1, 10, 1, 5, 4, 3) and its image under the swap
            # (x1, x3) <-> (x5, x6): not unique.
            None, source="MGH #18 (m=13)",
            # x0 lies in the invariant subspace x1 = x5, x3 = x6 of the
            # gradient flow; 5.65565e-3 is the minimum within it (a saddle
            # point of the full problem), where gradient methods often end.
            f_alternatives=(5.65565e-3,)),
    Problem("osborne2", osborne2,
            _arr([1.3, 0.65, 0.65, 0.7, 0.6, 3.0, 5.0, 7.0, 2.0, 4.5, 5.5]),
            4.01377e-2, None, source="MGH #19"),
    Problem("watson6", watson, np.zeros(6), 2.28767e-3, None,
            source="MGH #20 (n=6)"),
    Problem("extended_rosenbrock10", extended_rosenbrock,
            np.tile(_arr([-1.2, 1.0]), 5), 0.0, np.ones(10),
            source="MGH #21 (n=10)"),
    Problem("extended_powell8", extended_powell,
            np.tile(_arr([3.0, -1.0, 0.0, 1.0]), 2), 0.0, np.zeros(8),
            source="MGH #22 (n=8)"),
    Problem("penalty1_4", penalty1, np.arange(1.0, 5.0), 2.24997e-5, None,
            source="MGH #23 (n=4)"),
    Problem("penalty2_4", penalty2, np.full(4, 0.5), 9.37629e-6, None,
            source="MGH #24 (n=4)"),
    Problem("variably_dimensioned10", variably_dimensioned,
            1.0 - np.arange(1.0, 11.0) / 10.0, 0.0, np.ones(10),
            source="MGH #25 (n=10)"),
    Problem("trigonometric10", trigonometric, np.full(10, 0.1), 0.0, None,
            source="MGH #26 (n=10)",
            # Gradient methods from x0 usually end at the nearby local
            # minimum f = 2.79506e-5 reported in the literature for n=10.
            f_alternatives=(2.79506e-5,)),
    Problem("brown_almost_linear10", brown_almost_linear, np.full(10, 0.5),
            0.0,
            # zero at (a, ..., a, a**(1-n)) for roots a of
            # n a**n - (n+1) a**(n-1) + 1 = 0 (e.g. a = 1): not unique.
            None, source="MGH #27 (n=10)",
            # f = 1 at (0, ..., 0, n+1)
            f_alternatives=(1.0,)),
    Problem("discrete_boundary_value10", discrete_boundary_value,
            _h_grid_start(10), 0.0, None, source="MGH #28 (n=10)"),
    Problem("discrete_integral_equation10", discrete_integral_equation,
            _h_grid_start(10), 0.0, None, source="MGH #29 (n=10)"),
    Problem("broyden_tridiagonal10", broyden_tridiagonal, np.full(10, -1.0),
            0.0, None, source="MGH #30 (n=10)"),
    Problem("broyden_banded10", broyden_banded, np.full(10, -1.0), 0.0, None,
            source="MGH #31 (n=10)"),
    Problem("linear_full_rank10", linear_full_rank, np.ones(10), 10.0,
            np.full(10, -1.0), source="MGH #32 (n=10, m=20): f* = m - n"),
]

_BY_NAME = {p.name: p for p in PROBLEMS}
assert len(_BY_NAME) == len(PROBLEMS), "duplicate problem names"


def by_name(name: str) -> Problem:
    """The problem called ``name``; raises ``KeyError`` listing valid names."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(
            f"unknown problem {name!r}; known: {sorted(_BY_NAME)}"
        ) from None


def _shared_objectives(problems) -> dict[str, tuple[Callable, tuple]]:
    """Problems of one dimension behind one objective `fn(x, k)`, `k` (a traced int32)
    selecting the problem by `lax.switch`: a table's solves of one dimension then share
    one compiled solve (~1.5 CPU-s each on the 2-core machine; a group of nine n = 10
    problems compiles in ~3 s against ~13 s for nine separate solves)."""
    from jax import lax

    by_n: dict[int, list[Problem]] = {}
    for p in problems:
        assert p.args == (), p.name  # the group objective takes `k` as its one argument
        by_n.setdefault(p.n, []).append(p)
    out = {}
    for group in by_n.values():
        fns = [p.fn for p in group]
        fn = lambda x, k, fns=fns: lax.switch(k, fns, x)  # noqa: E731
        out.update({p.name: (fn, (jnp.int32(k),)) for k, p in enumerate(group)})
    return out


_SHARED = _shared_objectives(PROBLEMS)


def shared(problem: Problem) -> tuple[Callable, tuple]:
    """`(fn, args)` with `fn(x, *args) == problem.fn(x)`, `fn` shared by every problem
    of `problem.n` (pass it to the solver; grade with `problem.fn` itself)."""
    return _SHARED[problem.name]
