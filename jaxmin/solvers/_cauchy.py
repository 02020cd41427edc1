"""The L-BFGS-B model step: compact L-BFGS matrix, generalised Cauchy point, subspace
minimisation (Byrd, Lu, Nocedal & Zhu 1995, §3-5; Morales & Nocedal 2011).

Notation: `x, g`; bounds `lower`, `upper`; pairs `s`, `y` in ring buffers (rows);
`theta` scales the initial matrix. The limited-memory Hessian approximation in compact
form (Byrd, Nocedal & Schnabel 1994, eq. 3.5 as written in BLNZ eq. 3.2-3.4) is

    B = theta I - W M W^T,   W = [Y, theta S],   M = [[-D, L^T], [L, theta S^T S]]^-1,

with `D = diag(s_i.y_i)` and `L_ij = s_i.y_j` for pair `i` newer than pair `j`.
`W` is never formed: `W^T v = [Y v; theta S v]`. Everything has fixed shapes: the
Cauchy search passes breakpoints in a bounded loop (then, if needed, sorts them all
and evaluates every segment at once with prefix sums); free variables are masks, never
gathers.
"""

import equinox as eqx
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, Scalar

from .._misc import eps
from .._typing import Vector


class Compact(eqx.Module):
    """`B = theta I - W M W^T` from the stored pairs (rows of `s_hist`, `y_hist`)."""

    s_hist: Float[Array, "m n"]
    y_hist: Float[Array, "m n"]
    theta: Scalar
    middle: Float[Array, "2m 2m"]  # M, zero in the rows and columns of empty slots

    def wt(self, v: Vector) -> Float[Array, " 2m"]:
        """`W^T v`."""
        return jnp.concatenate([self.y_hist @ v, self.theta * (self.s_hist @ v)])

    def w(self, u: Float[Array, " 2m"]) -> Vector:
        """`W u`."""
        m = self.s_hist.shape[0]
        return u[:m] @ self.y_hist + self.theta * (u[m:] @ self.s_hist)

    def curvature(self, v: Vector) -> Scalar:
        """`v^T B v`."""
        wv = self.wt(v)
        return self.theta * jnp.dot(v, v) - jnp.dot(wv, self.middle @ wv)


def compact(s_hist, y_hist, sy, ss, k: Int[Array, ""], theta: Scalar) -> Compact:
    """The compact representation from the ring buffers and their inner products
    (`sy[i, j] = s_i.y_j`, `ss[i, j] = s_i.s_j`); `k` pairs stored since the last reset,
    the newest in row `(k - 1) % m`."""
    m = s_hist.shape[0]
    pos = (jnp.arange(m, dtype=k.dtype) - k) % m  # chronological rank: m - 1 is the newest
    valid = pos >= m - jnp.minimum(k, m)
    both = valid[:, None] & valid[None, :]
    lower = jnp.where(both & (pos[:, None] > pos[None, :]), sy, 0.0)
    d = jnp.where(valid, jnp.diagonal(sy), 0.0)
    k_mat = jnp.block([[-jnp.diag(d), lower.T], [lower, theta * jnp.where(both, ss, 0.0)]])
    # empty slots: identity rows, so K stays invertible and they decouple
    valid2 = jnp.concatenate([valid, valid])
    k_mat = jnp.where(valid2[:, None] | valid2[None, :], k_mat, jnp.eye(2 * m, dtype=sy.dtype))
    middle = jnp.linalg.inv(k_mat)
    middle = jnp.where(valid2[:, None] & valid2[None, :], middle, 0.0)
    return Compact(s_hist=s_hist, y_hist=y_hist, theta=theta, middle=middle)


def breakpoints(x: Vector, g: Vector, lower: Vector, upper: Vector) -> Vector:
    """`t_i`: where the path `P(x - t g)` reaches a bound in coordinate `i` (BLNZ
    eq. 4.1); `inf` where it never does, 0 where `x_i` is at a bound `g` pushes into."""
    t_up = (x - upper) / jnp.where(g < 0, g, -1.0)
    t_lo = (x - lower) / jnp.where(g > 0, g, 1.0)
    return jnp.maximum(jnp.where(g < 0, t_up, jnp.where(g > 0, t_lo, jnp.inf)), 0.0)


class CauchyPoint(eqx.Module):
    x: Vector  # the generalised Cauchy point, inside the bounds
    free: Bool[Array, " n"]  # coordinates not at a bound there
    t: Scalar  # its parameter along P(x - t g)


# breakpoints passed one at a time before the search switches to sorting them all
SCAN_BREAKPOINTS = 32


def _segment_step(slope, curv, tau, t_next):
    """`(found, t)`: whether the model's first local minimiser along the path lies on
    the segment `[tau, t_next)` with slope and curvature `slope`, `curv` at `tau`, and
    where."""
    dt = -slope / curv
    found = (slope >= 0) | (dt < t_next - tau) | ~jnp.isfinite(t_next)
    t = tau + jnp.where(slope >= 0, 0.0, jnp.maximum(dt, 0.0))
    return found, jnp.where(jnp.isfinite(t), t, tau)


def _scan_cauchy(g, t, b: Compact):
    """BLNZ Algorithm CP as written: pass the breakpoints one by one (the next one is a
    `min` over the rest, no sort), updating `p = W^T d`, `c = W^T (x(tau) - x)` and
    `G = |d|^2` (eq. 4.9-4.10), for at most `SCAN_BREAKPOINTS` of them.

    Returns `(found, t_star)`; `found` is False when the minimiser lies further on.
    """
    n = g.shape[0]
    moving = t > 0  # coordinates with t = 0 sit at a bound g pushes into: d_i = 0
    d = jnp.where(moving, -g, 0.0)
    p0 = b.wt(d)
    big_g0 = jnp.dot(d, d)
    curv0 = b.theta * big_g0 - jnp.dot(p0, b.middle @ p0)
    floor = eps(g) * curv0
    iota = jnp.arange(n, dtype=jnp.int32)

    def body(carry):
        j, tau, p, c, big_g, rest, _, _ = carry
        t_next = jnp.min(rest, initial=jnp.inf)
        slope = -(1 - b.theta * tau) * big_g - jnp.dot(p, b.middle @ c)
        curv = jnp.maximum(b.theta * big_g - jnp.dot(p, b.middle @ p), floor)
        found, t_star = _segment_step(slope, curv, tau, t_next)
        found = found | (big_g <= 0)
        # pass the next breakpoint (coordinate i reaches its bound; ties one per turn)
        i = jnp.min(jnp.where(rest == t_next, iota, n))
        i = jnp.minimum(i, n - 1)
        w_i = jnp.concatenate([b.y_hist[:, i], b.theta * b.s_hist[:, i]])
        c = jnp.where(found, c, c + (t_next - tau) * p)
        p = jnp.where(found, p, p + g[i] * w_i)
        big_g = jnp.where(found, big_g, big_g - g[i] ** 2)
        rest = jnp.where(found, rest, rest.at[i].set(jnp.inf))
        return j + 1, jnp.where(found, tau, t_next), p, c, big_g, rest, found, t_star

    def cond(carry):
        return ~carry[6] & (carry[0] < SCAN_BREAKPOINTS)

    zero = jnp.zeros((), g.dtype)
    start = (jnp.array(0, jnp.int32), zero, p0, jnp.zeros_like(p0), big_g0,
             jnp.where(moving, t, jnp.inf), jnp.array(False), zero)
    out = lax.while_loop(cond, body, start)
    return out[6], out[7]


def _sorted_cauchy(g, t, b: Compact):
    """Algorithm CP for all segments at once: sorted by breakpoint, segment `j` runs
    from `tau_j` (the `j`-th breakpoint, 0 for `j = 0`) to the next; with prefix sums
    `G_j = |d_j|^2`, `p_j = W^T d_j`, `c_j = W^T (x(tau_j) - x)` the slope and curvature
    there are `f'_j = -(1 - theta tau_j) G_j - p_j^T M c_j`, `f''_j = theta G_j - p_j^T M p_j`.
    Returns `t_star` on the first segment whose minimiser comes before its end."""
    order = jnp.argsort(t)
    ts, gs = t[order], g[order]
    # coordinate contributions in breakpoint order, as 2m x n columns of W^T
    wg = jnp.concatenate([b.y_hist[:, order], b.theta * b.s_hist[:, order]]) * gs[None, :]
    excl = lambda a: jnp.concatenate([jnp.zeros_like(a[..., :1]), jnp.cumsum(a, axis=-1)], axis=-1)
    g2 = gs * gs
    big_g = jnp.sum(g2) - excl(g2)  # G_j, j = 0..n
    tau = jnp.concatenate([jnp.zeros((1,), g.dtype), ts])  # segment starts
    end = jnp.concatenate([ts, jnp.full((1,), jnp.inf, g.dtype)])
    wg_sum = excl(wg)
    p = wg_sum - wg_sum[:, -1:]  # p_j = -sum_{i >= j} g_i w_i
    # passed coordinates sit at t_i, the rest at tau_j (an infinite t_i is never passed
    # on a finite segment)
    c = -excl(wg * jnp.where(jnp.isfinite(ts), ts, 0.0)[None, :]) + tau[None, :] * p
    c = jnp.where(jnp.isfinite(tau)[None, :], c, 0.0)
    mp, mc = b.middle @ p, b.middle @ c
    slope = -(1 - b.theta * tau) * big_g - jnp.sum(p * mc, axis=0)
    curv = b.theta * big_g - jnp.sum(p * mp, axis=0)
    # keep the model convex along the path (rounding), as L-BFGS-B does
    curv = jnp.maximum(curv, eps(g) * curv[0])
    stop, t_seg = _segment_step(slope, curv, tau, end)
    j = jnp.argmax(stop | (big_g <= 0))
    return t_seg[j]


def cauchy_point(x: Vector, g: Vector, lower: Vector, upper: Vector, b: Compact) -> CauchyPoint:
    """The first local minimiser of the quadratic model along `P(x - t g)` (BLNZ §4,
    Algorithm CP).

    The first `SCAN_BREAKPOINTS` breakpoints are passed one at a time, as in BLNZ,
    each found by a `min` (XLA's sort is slow on CPU, and the Cauchy point usually lies
    within the first few segments); beyond them all breakpoints are sorted and every
    segment is evaluated at once with prefix sums (`lax.cond`: only one branch runs,
    except under `vmap`).
    """
    t = breakpoints(x, g, lower, upper)
    found, t_scan = _scan_cauchy(g, t, b)
    t_star = lax.cond(found, lambda: t_scan, lambda: _sorted_cauchy(g, t, b))
    x_cp = jnp.clip(x - t_star * g, lower, upper)
    return CauchyPoint(x=x_cp, free=t > t_star, t=t_star)


def max_step(x: Vector, d: Vector, lower: Vector, upper: Vector) -> Scalar:
    """The largest `alpha` with `x + alpha d` inside the bounds (`inf` if unlimited)."""
    to_up = jnp.where(d > 0, (upper - x) / jnp.where(d > 0, d, 1.0), jnp.inf)
    to_lo = jnp.where(d < 0, (lower - x) / jnp.where(d < 0, d, -1.0), jnp.inf)
    return jnp.maximum(jnp.min(jnp.minimum(to_up, to_lo), initial=jnp.inf), 0.0)


def subspace_point(
    x: Vector, g: Vector, lower: Vector, upper: Vector, b: Compact, cp: CauchyPoint
) -> Vector:
    """Minimise the model over the free variables at the Cauchy point (BLNZ §5.1,
    direct primal method) and return the new point `x_bar`, inside the bounds.

    With `Z` the free coordinates, the reduced gradient is `r = Z^T (g + theta (x_cp -
    x) - W M c)` and the reduced matrix `theta I - Z^T W M W^T Z`, inverted by
    Sherman-Morrison-Woodbury: `d = -r / theta - Z^T W N^-1 M W^T Z r / theta^2` with
    `N = I - M W^T Z Z^T W / theta`. As in Morales & Nocedal (2011), the unconstrained
    subspace minimiser is projected onto the bounds; when that is not a descent
    direction from `x`, it is backtracked into the box instead (BLNZ eq. 5.8).
    """
    free = cp.free
    theta = b.theta
    c = b.wt(cp.x - x)
    r = jnp.where(free, g + theta * (cp.x - x) - b.w(b.middle @ c), 0.0)
    # W^T Z Z^T W as one product of [Y; S] with its free columns, then scaled by theta
    ys = jnp.concatenate([b.y_hist, b.s_hist])
    scale = jnp.concatenate([jnp.ones_like(b.middle[0, : b.s_hist.shape[0]]),
                             jnp.full_like(b.middle[0, : b.s_hist.shape[0]], theta)])
    wzw = (jnp.where(free[None, :], ys, 0.0) @ ys.T) * scale[:, None] * scale[None, :]
    n_mat = jnp.eye(wzw.shape[0], dtype=x.dtype) - (b.middle @ wzw) / theta
    v = jnp.linalg.solve(n_mat, b.middle @ b.wt(r))
    d = jnp.where(free, -r / theta - b.w(v) / theta**2, 0.0)
    d = jnp.where(jnp.isfinite(d), d, 0.0)
    projected = jnp.clip(cp.x + d, lower, upper)
    truncated = jnp.clip(cp.x + jnp.minimum(max_step(cp.x, d, lower, upper), 1.0) * d, lower, upper)
    return jnp.where(jnp.dot(projected - x, g) < 0, projected, truncated)
