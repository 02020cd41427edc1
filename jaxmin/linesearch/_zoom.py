"""Strong-Wolfe line search: bracketing phase and zoom (Nocedal & Wright, Alg. 3.5-3.6)."""

import equinox as eqx
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Scalar

from .._misc import as_dtype, eps, pack_scalars
from .._typing import ScalarLike
from ._base import AbstractLineSearch, best_or_last, check_wolfe_constants, evaluate
from ._interpolate import cubic_min


# The bracket's scalars, packed into one vector: a trial then updates them in one fused
# kernel instead of one kernel per scalar (what dominates a small problem's step on
# XLA:CPU). lo: the best step so far that satisfies sufficient decrease (alpha 0 at
# first); hi: the other end of the bracket, `inf` until a minimiser is bracketed; the
# last trial. The trial count (int) and the Wolfe flag (bool) stay apart: as floats in
# the vector they slowed `vmap`ped batches by ~20%.
_A_LO, _F_LO, _D_LO, _A_HI, _F_HI, _D_HI, _A, _F = range(8)


class Zoom(AbstractLineSearch):
    """Step satisfying the strong Wolfe conditions (N&W Alg. 3.5 with zoom, Alg. 3.6).

    `f(x + alpha p) <= f(x) + c1 alpha dphi(0)` and `|dphi(alpha)| <= c2 |dphi(0)|`.
    The step grows 4x until a minimiser is bracketed, then the bracket shrinks by
    safeguarded cubic interpolation (N&W eq. 3.59) or bisection. Both phases share one
    bounded loop: before a bracket exists its upper end is `inf`. The search gives up
    early where f cannot resolve any decrease along `p` (the quadratic through the
    start and the first too-long trial bottoms out within f's rounding).

    The default search of `jm.LBFGS` and `jm.BFGS`: the curvature condition keeps
    `s.y > 0`, so every step adds a memory pair. Choose `MoreThuente` for SciPy
    L-BFGS-B's iterates, `HagerZhang` where f's rounding hides its decrease.

    **Arguments:**

    - `c1` (default `1e-4`): sufficient-decrease constant, dimensionless.
    - `c2` (default `0.9`, which suits quasi-Newton methods; 0.1 suits nonlinear CG):
      curvature constant, `0 < c1 < c2 < 1`.
    - `max_steps` (default `25`): most evaluations of f; the search fails (`ok=False`)
      after them.

    **Example:**

    ```python
    solver = jm.LBFGS(linesearch=jm.linesearch.Zoom(c2=0.5))
    ```
    """

    c1: ScalarLike = 1e-4
    c2: ScalarLike = 0.9
    max_steps: int = eqx.field(default=25, static=True)

    def __check_init__(self):
        check_wolfe_constants(self)

    def __call__(self, f_and_g, x, p, f0, g0, alpha0=1.0):
        c1, c2 = as_dtype(self.c1, x), as_dtype(self.c2, x)
        dphi0 = jnp.dot(g0, p)

        def update(v, n, g_kept, a, f, g, d):
            a_lo, f_lo, d_lo, a_hi, f_hi, d_hi = (v[i] for i in range(_A))
            too_long = (f > f0 + c1 * a * dphi0) | (f >= f_lo)
            wolfe = ~too_long & (jnp.abs(d) <= -c2 * dphi0)
            # N&W Alg. 3.6: when the slope at the new lo points away from hi, the old
            # lo becomes hi. Before bracketing (hi = inf) that is "slope >= 0".
            flip = ~too_long & (d * jnp.sign(a_hi - a_lo) >= 0)

            def new_hi(at_trial, at_lo, old):
                return jnp.where(too_long, at_trial, jnp.where(flip, at_lo, old))

            v = pack_scalars(
                jnp.where(too_long, a_lo, a), jnp.where(too_long, f_lo, f), jnp.where(too_long, d_lo, d),
                new_hi(a, a_lo, a_hi), new_hi(f, f_lo, f_hi), new_hi(d, d_lo, d_hi),
                a, f,
            )
            # the gradient the search returns: lo's once a trial has decreased f (lo moved
            # off the start), else the last trial's (a step past lo leaves lo's in place)
            return v, n + 1, wolfe, jnp.where(too_long & (a_lo > 0), g_kept, g)

        def next_trial(v, n) -> Scalar:
            a_lo, a_hi = v[_A_LO], v[_A_HI]
            width = a_hi - a_lo
            cubic = cubic_min(a_lo, v[_F_LO], v[_D_LO], a_hi, v[_F_HI], v[_D_HI])
            # keep the trial inside the middle 80% of the bracket (N&W §3.5)
            t = (cubic - a_lo) / width
            safe = (t >= 0.1) & (t <= 0.9)
            zoomed = jnp.where(safe, cubic, a_lo + 0.5 * width)
            grown = jnp.where(jnp.isfinite(a_hi), zoomed, 4 * a_lo)
            return jnp.where(n == 0, as_dtype(alpha0, x), grown)

        def cond(carry):
            v, n, done = carry[:3]
            # the bracket can no longer shrink, or f no longer resolves it
            width = jnp.abs(v[_A_HI] - v[_A_LO])
            unresolved = width * jnp.abs(dphi0) <= eps(x) * jnp.abs(f0)
            collapsed = jnp.isfinite(v[_A_HI]) & ((width <= eps(x) * v[_A_HI]) | unresolved)
            return ~done & (n < self.max_steps) & ~collapsed & ~_hopeless(v, f0, dphi0, eps(x))

        def body(carry):
            v, n, _, g_kept = carry
            a = next_trial(v, n)
            f, g, d = evaluate(f_and_g, x, p, a)
            return update(v, n, g_kept, a, f, g, d)

        zero, inf = jnp.zeros((), x.dtype), jnp.array(jnp.inf, x.dtype)
        start = (pack_scalars(zero, f0, dphi0, inf, inf, zero, zero, f0), jnp.array(0, jnp.int32),
                 jnp.array(False), g0)
        v, n, done, g = lax.while_loop(cond, body, start)
        # success: lo is the Wolfe point; failure: lo if it decreased f, else last trial
        # (a Wolfe point decreased f, so `done` implies `a_lo > 0`; `g` is the one chosen)
        use_lo = done | (v[_A_LO] > 0)
        return best_or_last(use_lo, (v[_A_LO], v[_F_LO], g), (v[_A], v[_F], g), done, n)


def _hopeless(v, f0, dphi0, epsilon):
    """No decrease found yet, and none that f resolves exists along the direction: the
    quadratic through `f0`, the slope `dphi0` and the trial that was too long (N&W
    §3.5's interpolant), its curvature confirmed within 25% by the slope at that trial,
    has its minimum within f's rounding of `f0`. A direction corrupted by rounding
    (a memory pair from a step f could not resolve) otherwise costs the search all its
    evaluations, each halving the step, to the same failure."""
    a_hi, f_hi, d_hi = v[_A_HI], v[_F_HI], v[_D_HI]
    curvature = (f_hi - f0 - dphi0 * a_hi) / (a_hi * a_hi)
    from_slope = (d_hi - dphi0) / (2 * a_hi)
    quadratic = jnp.isfinite(curvature) & (curvature > 0) & (jnp.abs(from_slope - curvature) <= 0.25 * curvature)
    return (v[_A_LO] == 0) & quadratic & (dphi0 * dphi0 <= 4 * curvature * epsilon * jnp.abs(f0))
