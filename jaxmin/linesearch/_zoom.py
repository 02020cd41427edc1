"""Strong-Wolfe line search: bracketing phase and zoom (Nocedal & Wright, Alg. 3.5-3.6)."""

import equinox as eqx
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Scalar

from .._misc import as_dtype, eps
from .._typing import ScalarLike, Vector
from ._base import AbstractLineSearch, best_or_last, check_wolfe_constants, evaluate
from ._interpolate import cubic_min


class _Bracket(eqx.Module):
    # lo: the best step so far that satisfies sufficient decrease (alpha 0 at first)
    a_lo: Scalar
    f_lo: Scalar
    d_lo: Scalar
    g_lo: Vector
    # hi: the other end of the bracket; `inf` until a minimiser is bracketed
    a_hi: Scalar
    f_hi: Scalar
    d_hi: Scalar
    # the last trial
    a: Scalar
    f: Scalar
    g: Vector
    done: Bool[Array, ""]
    n: Int[Array, ""]


class Zoom(AbstractLineSearch):
    """Step satisfying the strong Wolfe conditions (N&W Alg. 3.5 with zoom, Alg. 3.6).

    `f(x + alpha p) <= f(x) + c1 alpha dphi(0)` and `|dphi(alpha)| <= c2 |dphi(0)|`.
    The step grows 4x until a minimiser is bracketed, then the bracket shrinks by
    safeguarded cubic interpolation (N&W eq. 3.59) or bisection. Both phases share one
    bounded loop: before a bracket exists its upper end is `inf`.

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

        def update(b: _Bracket, a, f, g, d) -> _Bracket:
            too_long = (f > f0 + c1 * a * dphi0) | (f >= b.f_lo)
            wolfe = ~too_long & (jnp.abs(d) <= -c2 * dphi0)
            # N&W Alg. 3.6: when the slope at the new lo points away from hi, the old
            # lo becomes hi. Before bracketing (hi = inf) that is "slope >= 0".
            flip = ~too_long & (d * jnp.sign(b.a_hi - b.a_lo) >= 0)
            a_hi = jnp.where(too_long, a, jnp.where(flip, b.a_lo, b.a_hi))
            f_hi = jnp.where(too_long, f, jnp.where(flip, b.f_lo, b.f_hi))
            d_hi = jnp.where(too_long, d, jnp.where(flip, b.d_lo, b.d_hi))
            return _Bracket(
                a_lo=jnp.where(too_long, b.a_lo, a),
                f_lo=jnp.where(too_long, b.f_lo, f),
                d_lo=jnp.where(too_long, b.d_lo, d),
                g_lo=jnp.where(too_long, b.g_lo, g),
                a_hi=a_hi, f_hi=f_hi, d_hi=d_hi,
                a=a, f=f, g=g, done=wolfe, n=b.n + 1,
            )

        def next_trial(b: _Bracket) -> Scalar:
            first = b.n == 0
            width = b.a_hi - b.a_lo
            cubic = cubic_min(b.a_lo, b.f_lo, b.d_lo, b.a_hi, b.f_hi, b.d_hi)
            # keep the trial inside the middle 80% of the bracket (N&W §3.5)
            t = (cubic - b.a_lo) / width
            safe = (t >= 0.1) & (t <= 0.9)
            zoomed = jnp.where(safe, cubic, b.a_lo + 0.5 * width)
            grown = jnp.where(jnp.isfinite(b.a_hi), zoomed, 4 * b.a_lo)
            return jnp.where(first, as_dtype(alpha0, x), grown)

        def cond(b: _Bracket):
            # the bracket can no longer shrink, or f no longer resolves it
            width = jnp.abs(b.a_hi - b.a_lo)
            unresolved = width * jnp.abs(dphi0) <= eps(x) * jnp.abs(f0)
            collapsed = jnp.isfinite(b.a_hi) & ((width <= eps(x) * b.a_hi) | unresolved)
            return ~b.done & (b.n < self.max_steps) & ~collapsed

        def body(b: _Bracket):
            a = next_trial(b)
            f, g, d = evaluate(f_and_g, x, p, a)
            return update(b, a, f, g, d)

        inf = jnp.array(jnp.inf, x.dtype)
        zero = jnp.zeros((), x.dtype)
        start = _Bracket(
            a_lo=zero, f_lo=f0, d_lo=dphi0, g_lo=g0, a_hi=inf, f_hi=inf, d_hi=zero,
            a=zero, f=f0, g=g0, done=jnp.array(False), n=jnp.array(0, jnp.int32),
        )
        b = lax.while_loop(cond, body, start)
        # success: lo is the Wolfe point; failure: lo if it decreased f, else last trial
        use_lo = b.done | (b.a_lo > 0)
        return best_or_last(use_lo, (b.a_lo, b.f_lo, b.g_lo), (b.a, b.f, b.g), b.done, b.n)
