"""Moré–Thuente line search (Moré & Thuente 1994, ACM TOMS 20(3); as in MINPACK-2's
`dcsrch`/`dcstep`, which L-BFGS-B uses)."""

import equinox as eqx
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Scalar

from .._misc import as_dtype, pack_scalars
from .._typing import ScalarLike, Vector
from ._base import AbstractLineSearch, best_or_last, check_wolfe_constants

_XTRAPL, _XTRAPU = 1.1, 4.0  # extrapolation range before a bracket exists (§4)
STPMAX = 1e10  # the largest step (MINPACK-2 `stpmax`)


def _cubic_root(theta, da, db, sign):
    """`gamma` of M&T §4: the signed square root of `theta² - da db`, scaled."""
    s = jnp.maximum(jnp.maximum(jnp.abs(theta), jnp.abs(da)), jnp.abs(db))
    root = s * jnp.sqrt(jnp.maximum(0.0, (theta / s) ** 2 - (da / s) * (db / s)))
    return jnp.where(sign, -root, root)


def dcstep(stx, fx, dx, sty, fy, dy, stp, fp, dp, brackt, stmin, stmax):
    """One safeguarded step of M&T §4: the next trial and the updated interval.

    `(stx, fx, dx)` is the best step so far, `(sty, fy, dy)` the other end of the
    interval, `(stp, fp, dp)` the latest trial. Returns
    `(stx, fx, dx, sty, fy, dy, stpf, brackt, x_moved)` where `x_moved` says that the
    best step became `stp`.
    """
    theta = 3 * (fx - fp) / (stp - stx) + dx + dp
    sgnd = dp * jnp.sign(dx)
    # Case 1: higher value. The minimiser is bracketed; take the cubic step if it is
    # closer to stx than the quadratic one, else their mean.
    gamma = _cubic_root(theta, dx, dp, stp < stx)
    stpc = stx + ((gamma - dx) + theta) / (((gamma - dx) + gamma) + dp) * (stp - stx)
    stpq = stx + dx / ((fx - fp) / (stp - stx) + dx) / 2 * (stp - stx)
    step1 = jnp.where(jnp.abs(stpc - stx) < jnp.abs(stpq - stx), stpc, stpc + (stpq - stpc) / 2)
    # Cases 2 and 3 share the cubic's root and the secant step.
    gamma = _cubic_root(theta, dx, dp, stp > stx)
    stps = stp + dp / (dp - dx) * (stx - stp)
    # Case 2: derivatives of opposite sign. Bracketed; the farther of cubic and secant.
    stpc = stp + ((gamma - dp) + theta) / (((gamma - dp) + gamma) + dx) * (stx - stp)
    step2 = jnp.where(jnp.abs(stpc - stp) > jnp.abs(stps - stp), stpc, stps)
    # Case 3: same sign, derivative decreasing in magnitude. The cubic is used only if
    # it tends to infinity in the step's direction or its minimiser lies beyond stp.
    r = ((gamma - dp) + theta) / ((gamma + (dx - dp)) + gamma)
    edge = jnp.where(stp > stx, stmax, stmin)
    stpc = jnp.where((r < 0) & (gamma != 0), stp + r * (stx - stp), edge)
    closer = jnp.where(jnp.abs(stpc - stp) < jnp.abs(stps - stp), stpc, stps)
    farther = jnp.where(jnp.abs(stpc - stp) > jnp.abs(stps - stp), stpc, stps)
    limit = stp + 0.66 * (sty - stp)
    inside = jnp.where(stp > stx, jnp.minimum(limit, closer), jnp.maximum(limit, closer))
    step3 = jnp.where(brackt, inside, jnp.clip(farther, stmin, stmax))
    # Case 4: same sign, derivative not decreasing. Cubic towards sty if bracketed.
    theta4 = 3 * (fp - fy) / (sty - stp) + dy + dp
    gamma = _cubic_root(theta4, dy, dp, stp > sty)
    stpc = stp + ((gamma - dp) + theta4) / (((gamma - dp) + gamma) + dy) * (sty - stp)
    step4 = jnp.where(brackt, stpc, edge)

    case1 = fp > fx
    case2 = ~case1 & (sgnd < 0)
    case3 = ~case1 & ~case2 & (jnp.abs(dp) < jnp.abs(dx))
    stpf = jnp.where(case1, step1, jnp.where(case2, step2, jnp.where(case3, step3, step4)))

    # Interval update (M&T §3, updating algorithm).
    y_from_x = ~case1 & (sgnd < 0)
    sty_, fy_, dy_ = (
        jnp.where(case1, stp, jnp.where(y_from_x, stx, sty)),
        jnp.where(case1, fp, jnp.where(y_from_x, fx, fy)),
        jnp.where(case1, dp, jnp.where(y_from_x, dx, dy)),
    )
    stx_, fx_, dx_ = (jnp.where(case1, stx, stp), jnp.where(case1, fx, fp), jnp.where(case1, dx, dp))
    brackt = brackt | case1 | case2
    # A NaN/inf trial leaves non-finite interpolants: bisect the bracket instead.
    stpf = jnp.where(jnp.isfinite(stpf), stpf, jnp.where(brackt, 0.5 * (stx_ + sty_), stmax))
    return stx_, fx_, dx_, sty_, fy_, dy_, stpf, brackt, ~case1


class MTSearch(eqx.Module):
    """The state of `more_thuente_loop`, and its result."""

    stx: Scalar  # best step so far and its value, slope, point and gradient
    fx: Scalar
    dx: Scalar
    xx: Vector
    gx: Vector
    sty: Scalar  # other end of the interval of uncertainty
    fy: Scalar
    dy: Scalar
    stp: Scalar  # the next trial
    stmin: Scalar
    stmax: Scalar
    width: Scalar
    width1: Scalar
    brackt: Bool[Array, ""]
    stage1: Bool[Array, ""]
    a: Scalar  # the last trial, its value, point and gradient
    f: Scalar
    x: Vector
    g: Vector
    converged: Bool[Array, ""]
    stopped: Bool[Array, ""]
    n: Int[Array, ""]


# The search's scalars and flags travel through its loop packed into one vector each
# (`pack_scalars`): a trial then updates them in two kernels instead of one each, and the
# loop's start copies two buffers, not eighteen.
_FLOATS = ("stx", "fx", "dx", "sty", "fy", "dy", "stp", "stmin", "stmax", "width", "width1", "a", "f")
_FLAGS = ("brackt", "stage1", "converged", "stopped")


def _packed(s: MTSearch):
    return (pack_scalars(*(getattr(s, k) for k in _FLOATS)), pack_scalars(*(getattr(s, k) for k in _FLAGS)),
            s.n, s.xx, s.gx, s.x, s.g)


def _unpacked(carry) -> MTSearch:
    floats, flags, n, xx, gx, x, g = carry
    return MTSearch(**{k: floats[i] for i, k in enumerate(_FLOATS)}, **{k: flags[i] for i, k in enumerate(_FLAGS)},
                    n=n, xx=xx, gx=gx, x=x, g=g)


def more_thuente_loop(search, f_and_g, point, f0, g0, d, stp0, stpmax) -> MTSearch:
    """MINPACK-2's `dcsrch` on `phi(alpha) = f(point(alpha))` for `alpha` in
    `(0, stpmax]`, with slope `grad f . d` (`point(alpha) = x + alpha d`, or its
    projection into a box, as L-BFGS-B uses it). A step at `stpmax` that decreases f
    enough while f still descends ends the search successfully (dcsrch's `STPMAX`
    exit). NaN/inf values count as too long. `search` gives `c1`, `c2`, `xtol` and
    `max_steps`.
    """
    x0 = point(jnp.zeros_like(stp0))
    c1, c2, xtol = as_dtype(search.c1, f0), as_dtype(search.c2, f0), as_dtype(search.xtol, f0)
    dphi0 = jnp.dot(g0, d)
    gtest = c1 * dphi0

    def body(carry):
        s = _unpacked(carry)
        stp = s.stp
        x = point(stp)
        f, g = f_and_g(x)
        f = f.astype(f0.dtype)
        dphi = jnp.dot(g, d)
        finite = jnp.isfinite(f) & jnp.isfinite(dphi)
        f, dphi = jnp.where(finite, f, jnp.inf), jnp.where(finite, dphi, 0.0)
        ftest = f0 + stp * gtest
        sufficient = f <= ftest
        converged = (sufficient & (jnp.abs(dphi) <= -c2 * dphi0)) | (
            (stp >= stpmax) & sufficient & (dphi <= gtest)
        )
        return _packed(_next_trial(s, x, f, g, dphi, ftest, sufficient, converged, gtest, xtol, stpmax))

    def cond(carry):
        _, flags, n = carry[:3]
        return ~flags[_FLAGS.index("stopped")] & (n < search.max_steps)

    start = _start(f0, g0, x0, dphi0, jnp.minimum(stp0, stpmax))
    return _unpacked(lax.while_loop(cond, body, _packed(start)))


def _start(f0, g0, x0, dphi0, stp0) -> MTSearch:
    """The search before its first trial `stp0`: no bracket, stage 1, the interval
    `[0, stp0 + 4 stp0]` (the extrapolation range of §4)."""
    zero = jnp.zeros_like(f0)
    return MTSearch(
        stx=zero, fx=f0, dx=dphi0, xx=x0, gx=g0, sty=zero, fy=f0, dy=dphi0, stp=stp0,
        stmin=zero, stmax=stp0 + _XTRAPU * stp0,
        width=jnp.asarray(STPMAX, f0.dtype), width1=jnp.asarray(2 * STPMAX, f0.dtype),
        brackt=jnp.array(False), stage1=jnp.array(True),
        a=zero, f=f0, x=x0, g=g0, converged=jnp.array(False), stopped=jnp.array(False),
        n=jnp.array(0, jnp.int32),
    )


def _next_trial(s: MTSearch, x, f, g, dphi, ftest, sufficient, converged, gtest, xtol, stpmax) -> MTSearch:
    """dcsrch after the trial `s.stp` (point `x`, value `f`, slope `dphi`): the interval
    update and next trial of `dcstep`, bisection where the bracket has not shrunk
    enough, the new bounds on the trial, and the stop where no progress is possible."""
    stp = s.stp
    stage1 = s.stage1 & ~(sufficient & (dphi >= 0))
    # Stage 1 steps on psi = phi - c1 alpha dphi(0) while psi > 0 at stp (§3).
    shift = jnp.where(stage1 & (f <= s.fx) & (f > ftest), gtest, 0.0)
    stx, fx, dx, sty, fy, dy, stpf, brackt, x_moved = dcstep(
        s.stx, s.fx - s.stx * shift, s.dx - shift,
        s.sty, s.fy - s.sty * shift, s.dy - shift,
        stp, f - stp * shift, dphi - shift,
        s.brackt, s.stmin, s.stmax,
    )
    fx, dx, fy, dy = fx + stx * shift, dx + shift, fy + sty * shift, dy + shift
    # Bisect when the bracket has not shrunk enough in two steps.
    bisect = brackt & (jnp.abs(sty - stx) >= 0.66 * s.width1)
    stpf = jnp.where(bisect, stx + 0.5 * (sty - stx), stpf)
    width1 = jnp.where(brackt, s.width, s.width1)
    width = jnp.where(brackt, jnp.abs(sty - stx), s.width)
    stmin = jnp.where(brackt, jnp.minimum(stx, sty), stpf + _XTRAPL * (stpf - stx))
    stmax = jnp.where(brackt, jnp.maximum(stx, sty), stpf + _XTRAPU * (stpf - stx))
    stpf = jnp.clip(stpf, 0.0, stpmax)
    # No progress possible: rounding errors or the interval below xtol, or at
    # stpmax already and still descending.
    stuck = brackt & ((stpf <= stmin) | (stpf >= stmax) | (stmax - stmin <= xtol * stmax))
    stuck = stuck | ((stp >= stpmax) & (stpf >= stpmax))
    return MTSearch(
        stx=stx, fx=fx, dx=dx, xx=jnp.where(x_moved, x, s.xx), gx=jnp.where(x_moved, g, s.gx),
        sty=sty, fy=fy, dy=dy, stp=stpf, stmin=stmin, stmax=stmax,
        width=width, width1=width1, brackt=brackt, stage1=stage1,
        a=stp, f=f, x=x, g=g, converged=converged, stopped=converged | stuck, n=s.n + 1,
    )


class MoreThuente(AbstractLineSearch):
    """Strong-Wolfe search with safeguarded interval updates (Moré & Thuente 1994).

    Finds `alpha` with `f(x + alpha p) <= f(x) + c1 alpha dphi(0)` and
    `|dphi(alpha)| <= c2 |dphi(0)|`. Until a step with `psi(alpha) <= 0` and
    `dphi(alpha) >= 0` is found it works on the auxiliary function
    `psi(alpha) = phi(alpha) - phi(0) - c1 alpha dphi(0)` (stage 1), then on `phi`.
    Trials come from cubic, quadratic and secant interpolants (`dcstep`), with
    bisection when the interval fails to shrink by 2/3. Defaults are L-BFGS-B's.

    Choose it to reproduce SciPy's L-BFGS-B (it is the search of `jm.LBFGS` with
    bounds), or for its guaranteed bracket reduction on difficult one-dimensional
    profiles.

    **Arguments:**

    - `c1` (default `1e-3`): sufficient-decrease constant (`ftol` in MINPACK-2),
      dimensionless.
    - `c2` (default `0.9`): curvature constant (`gtol` in MINPACK-2), `c1 < c2 < 1`.
    - `xtol` (default `0.1`): stop when the interval's relative width is below it.
    - `max_steps` (default `20`): most evaluations of f; the search fails
      (`ok=False`) after them.

    **Example:**

    ```python
    solver = jm.LBFGS(linesearch=jm.linesearch.MoreThuente())
    ```
    """

    c1: ScalarLike = 1e-3
    c2: ScalarLike = 0.9
    xtol: ScalarLike = 0.1
    max_steps: int = eqx.field(default=20, static=True)

    def __check_init__(self):
        check_wolfe_constants(self)

    def __call__(self, f_and_g, x, p, f0, g0, alpha0=1.0):
        s = more_thuente_loop(
            self, f_and_g, lambda a: x + a * p, f0, g0, p, as_dtype(alpha0, x),
            jnp.asarray(STPMAX, x.dtype),
        )
        # success: the last trial; failure: the best step if it decreased f
        use_best = ~s.converged & (s.stx > 0)
        return best_or_last(use_best, (s.stx, s.fx, s.gx), (s.a, s.f, s.g), s.converged, s.n)
