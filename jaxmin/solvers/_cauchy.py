"""The L-BFGS-B model step: generalised Cauchy point and subspace minimisation (Byrd,
Lu, Nocedal & Zhu 1995, §4-5; Morales & Nocedal 2011), on the compact model
`B = theta I - W M W^T` of `_compact.py`.

Notation: `x, g`; bounds `lower`, `upper`; pairs `s`, `y` in ring buffers (rows);
`theta` scales the initial matrix. Everything has fixed shapes: the Cauchy search
passes breakpoints in a bounded loop (the next one a `min` over the rest, or over
block minima for large `n`), then, if needed, sorts them all and evaluates the
segments a chunk at a time with prefix sums (or, with no pair stored, takes the
minimiser in closed form); free variables are masks.
"""

from typing import Any, Callable, NamedTuple

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, Scalar

from .._misc import eps
from .._typing import Vector
from ._compact import Compact


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


# from this many unknowns the scan finds the next breakpoint through the minima of
# blocks of `SCAN_BLOCK` breakpoints (below, a pass over n costs about as much)
BLOCKED_SCAN = 4096
SCAN_BLOCK = 64


class _Walk(NamedTuple):
    """The breakpoints in the order `(t, index)`, one at a time: `next(state)` gives
    `(t_next, i, aux)` (`t_next` infinite when none is left), `passed(state, t_next, i,
    aux, found)` the state after passing `i` (unchanged when `found`)."""

    state: Any
    next: Callable
    passed: Callable


def _flat_walk(rest: Vector) -> _Walk:
    """The next breakpoint is the `min` of those not passed, which are set to `inf`
    as they are passed: three passes over `n` per breakpoint, few kernels."""
    n = rest.shape[0]
    iota = jnp.arange(n, dtype=jnp.int32)

    def next_(rest):
        t_next = jnp.min(rest, initial=jnp.inf)
        return t_next, jnp.minimum(jnp.min(jnp.where(rest == t_next, iota, n)), n - 1), None

    def passed(rest, t_next, i, aux, found):
        return jnp.where(found | (iota != i), rest, jnp.inf)

    return _Walk(rest, next_, passed)


def _blocked_walk(rest: Vector) -> _Walk:
    """The same order from the minima of blocks of `SCAN_BLOCK` breakpoints: a
    breakpoint costs a pass over the block minima and one block, not over `n`, and
    nothing `n`-sized is written (the passed ones are those before the last passed in
    the order `(t, index)`)."""
    n = rest.shape[0]
    num = -(-n // SCAN_BLOCK)
    blocks = jnp.pad(rest, (0, num * SCAN_BLOCK - n), constant_values=jnp.inf).reshape(num, SCAN_BLOCK)
    lane, rows = jnp.arange(SCAN_BLOCK, dtype=jnp.int32), jnp.arange(num, dtype=jnp.int32)

    def next_(state):
        block_min, t_last, i_last = state
        t_next = jnp.min(block_min)
        blk = jnp.minimum(jnp.min(jnp.where(block_min == t_next, rows, num)), num - 1)
        row = blocks[blk[None]][0]  # (by an index array, as the scan's other reads)
        index = blk * SCAN_BLOCK + lane
        left = (row > t_last) | ((row == t_last) & (index > i_last))
        j = jnp.min(jnp.where(left & (row == t_next), lane, SCAN_BLOCK))
        return t_next, jnp.minimum(blk * SCAN_BLOCK + j, n - 1), (blk, row, left, j)

    def passed(state, t_next, i, aux, found):
        block_min, t_last, i_last = state
        blk, row, left, j = aux
        row_min = jnp.min(jnp.where(left & (lane != j), row, jnp.inf))
        block_min = jnp.where(~found & (rows == blk), row_min, block_min)
        return block_min, jnp.where(found, t_last, t_next), jnp.where(found, i_last, i)

    start = (jnp.min(blocks, axis=1), jnp.zeros((), rest.dtype), jnp.array(-1, jnp.int32))
    return _Walk(start, next_, passed)


def _scan_cauchy(g, t, b: Compact):
    """BLNZ Algorithm CP as written: pass the breakpoints one by one (the next one is a
    `min` over the rest, no sort; from `BLOCKED_SCAN` unknowns over block minima),
    updating `p = W^T d`, `c = W^T (x(tau) - x)` and `G = |d|^2` (eq. 4.9-4.10), for
    at most `SCAN_BREAKPOINTS` of them.

    Returns `(found, t_star)`; `found` is False when the minimiser lies further on.
    """
    n = g.shape[0]
    moving = t > 0  # coordinates with t = 0 sit at a bound g pushes into: d_i = 0
    d = jnp.where(moving, -g, 0.0)
    p0 = b.wt(d)
    big_g0 = jnp.dot(d, d)
    curv0 = b.theta * big_g0 - jnp.dot(p0, b.middle @ p0)
    floor = eps(g) * curv0
    walk = (_blocked_walk if n >= BLOCKED_SCAN else _flat_walk)(jnp.where(moving, t, jnp.inf))

    def body(carry):
        j, tau, p, c, big_g, rest, _, _ = carry
        # the next breakpoint (coordinate i reaches its bound; ties one per turn)
        t_next, i, aux = walk.next(rest)
        slope = -(1 - b.theta * tau) * big_g - jnp.dot(p, b.middle @ c)
        curv = jnp.maximum(b.theta * big_g - jnp.dot(p, b.middle @ p), floor)
        found, t_star = _segment_step(slope, curv, tau, t_next)
        found = found | (big_g <= 0)
        # gathers by an index array: over a sharded x each device reads its own part
        # (a scalar index would gather all of g and W onto every device)
        at = i[None]
        g_i, w_i = g[at][0], b.scale * b.ys[:, at][:, 0]
        c = jnp.where(found, c, c + (t_next - tau) * p)
        p = jnp.where(found, p, p + g_i * w_i)
        big_g = jnp.where(found, big_g, big_g - g_i**2)
        rest = walk.passed(rest, t_next, i, aux, found)
        return j + 1, jnp.where(found, tau, t_next), p, c, big_g, rest, found, t_star

    def cond(carry):
        return ~carry[6] & (carry[0] < SCAN_BREAKPOINTS)

    zero = jnp.zeros((), g.dtype)
    start = (jnp.array(0, jnp.int32), zero, p0, jnp.zeros_like(p0), big_g0, walk.state, jnp.array(False), zero)
    out = lax.while_loop(cond, body, start)
    return out[6], out[7]


def breakpoint_order(t: Vector) -> Int[Array, " n"]:
    """`argsort(t)` for breakpoints `t >= 0` (`inf` allowed) by one sort of integer keys:
    XLA's CPU sort compares integers several times faster than floats, and sorts one
    array much faster than a (key, index) pair. The key is `t`'s bit pattern (monotone
    for `t >= 0`) with the index in its low bits: exact for float32 (with x64 enabled);
    for float64 (or float32 without x64) breakpoints that differ only in their lowest
    `ceil(log2 n)` mantissa bits keep index order, a relative difference of
    `2^(log2 n - 52)` in float64, passing them in that order is rounding. Ties keep
    index order, as a stable argsort does."""
    n = t.shape[0]
    bits = max(1, (n - 1).bit_length())
    wide = jax.dtypes.canonicalize_dtype(jnp.int64) == jnp.int64
    if not wide and t.dtype == jnp.float32 and bits > 12:
        return jnp.argsort(t)  # 32-bit keys would lose too much of t
    int_t = jnp.int64 if t.dtype == jnp.float64 else jnp.int32
    key = lax.bitcast_convert_type(t + 0.0, int_t)  # (+ 0.0: -0 becomes +0)
    if wide and t.dtype == jnp.float32:
        key, shift = key.astype(jnp.int64) << 32, 0
    else:
        shift = bits
    key_t = key.dtype
    idx = jnp.arange(n, dtype=key_t)
    key = ((key >> shift) << shift) | idx
    return (jnp.sort(key) & jnp.asarray((1 << bits) - 1, key_t)).astype(jnp.int32)


# columns per block of `_prefix_sums`
PREFIX_BLOCK = 64


def _prefix_sums(a: Float[Array, "r n"]) -> Float[Array, "r n+1"]:
    """Exclusive prefix sums along the last axis (`n + 1` columns, the first 0), by
    blocks: a product with a triangular matrix of ones within each block of
    `PREFIX_BLOCK` columns, then the blocks' running totals (several times faster than
    XLA's CPU `cumsum` on a few rows of length `n`)."""
    r, n = a.shape
    size = PREFIX_BLOCK
    num = n // size + 1
    blocks = jnp.pad(a, ((0, 0), (1, num * size - n - 1))).reshape(r, num, size)
    within = blocks @ jnp.triu(jnp.ones((size, size), a.dtype))
    totals = within[:, :, -1]
    return (within + (jnp.cumsum(totals, axis=1) - totals)[:, :, None]).reshape(r, -1)[:, : n + 1]


# breakpoints per chunk of the sorted Cauchy search
CHUNK = 128


class _Chunked(eqx.Module):
    """The sorted search's carry: the model along the path at the start of chunk
    `index` (segment `j = index * CHUNK`): `p_j`, `C_j`, `G_j` (see `_sorted_cauchy`)."""

    index: Int[Array, ""]
    p: Float[Array, " 2m"]
    big_c: Float[Array, " 2m"]
    big_g: Scalar
    found: Bool[Array, ""]
    t_star: Scalar


def _sorted_cauchy(g, t, b: Compact):
    """Algorithm CP over the sorted breakpoints, `CHUNK` segments at a time: segment `j`
    runs from `tau_j` (the `j`-th breakpoint, 0 for `j = 0`) to the next; with
    `G_j = |d_j|^2`, `p_j = W^T d_j = -sum_{i >= j} g_i w_i` and
    `C_j = sum_{i < j} t_i g_i w_i`, so that `c_j = W^T (x(tau_j) - x) = tau_j p_j - C_j`,
    the slope and curvature there are `f'_j = -(1 - theta tau_j) G_j - p_j^T M c_j` and
    `f''_j = theta G_j - p_j^T M p_j`. A chunk evaluates its segments at once from
    prefix sums; the search stops at the first chunk holding a segment whose minimiser
    comes before its end, so its cost grows with the breakpoints passed, not with `n`
    (the sort aside). Returns `t_star`."""
    n, m2 = g.shape[0], b.ys.shape[0]
    # coordinates at a bound g pushes into (t = 0) never move: they sort last, with d_i = 0
    moving = t > 0
    t, g = jnp.where(moving, t, jnp.inf), jnp.where(moving, g, 0.0)
    num = n // CHUNK + 1  # chunks covering segments 0..n (segment n ends at inf)
    pad = num * CHUNK - n
    order = breakpoint_order(t)
    ts = jnp.concatenate([t[order], jnp.full((pad,), jnp.inf, g.dtype)])
    gs = jnp.concatenate([g[order], jnp.zeros((pad,), g.dtype)])  # padding passes nothing
    order = jnp.concatenate([order, jnp.zeros((pad,), order.dtype)])
    starts = jnp.concatenate([jnp.zeros((1,), g.dtype), ts[:-1]])
    p0 = -b.wt(g)
    curv0 = b.theta * jnp.dot(g, g) - jnp.dot(p0, b.middle @ p0)

    def chunk(carry: _Chunked) -> _Chunked:
        part = lambda a: lax.dynamic_slice_in_dim(a, carry.index * CHUNK, CHUNK)
        t_c, g_c, tau, end = part(ts), part(gs), part(starts), part(ts)
        wg = b.ys[:, part(order)] * b.scale[:, None] * g_c[None, :]
        t_fin = jnp.where(jnp.isfinite(t_c), t_c, 0.0)  # an infinite t_i is never passed
        sums = _prefix_sums(jnp.concatenate([wg, wg * t_fin[None, :], (g_c * g_c)[None, :]]))
        p = carry.p[:, None] + sums[:m2, :-1]
        big_c = carry.big_c[:, None] + sums[m2:-1, :-1]
        big_g = carry.big_g - sums[-1, :-1]
        mp = b.middle @ p
        pmp = jnp.sum(p * mp, axis=0)
        finite = jnp.isfinite(tau)
        pmc = jnp.where(finite, jnp.where(finite, tau, 0.0) * pmp - jnp.sum(big_c * mp, axis=0), 0.0)
        slope = -(1 - b.theta * tau) * big_g - pmc
        # keep the model convex along the path (rounding), as L-BFGS-B does
        curv = jnp.maximum(b.theta * big_g - pmp, eps(g) * curv0)
        stop, t_seg = _segment_step(slope, curv, tau, end)
        stop = stop | (big_g <= 0)
        return _Chunked(
            index=carry.index + 1, p=carry.p + sums[:m2, -1], big_c=carry.big_c + sums[m2:-1, -1],
            big_g=carry.big_g - sums[-1, -1], found=jnp.any(stop), t_star=t_seg[jnp.argmax(stop)],
        )

    zero = jnp.zeros((), g.dtype)
    start = _Chunked(index=jnp.array(0, jnp.int32), p=p0, big_c=jnp.zeros_like(p0),
                     big_g=jnp.dot(g, g), found=jnp.array(False), t_star=zero)
    return lax.while_loop(lambda c: ~c.found & (c.index < num), chunk, start).t_star


def _steepest_cauchy(g, t, b: Compact) -> Scalar:
    """`t_star` when no pair is stored (`B = theta I`): the slope along the path is
    `-(1 - theta tau) G(tau)`, so the first minimiser is `1 / theta`, or earlier the
    last breakpoint of a coordinate that moves (`g_i != 0`), after which nothing moves
    (the sequential walk's result, without passing the breakpoints)."""
    last = jnp.max(jnp.where((t > 0) & (g != 0), t, 0.0), initial=0.0)
    return jnp.minimum(1 / b.theta, last)


def cauchy_point(x: Vector, g: Vector, lower: Vector, upper: Vector, b: Compact,
                 empty: Bool[Array, ""] = False) -> CauchyPoint:
    """The first local minimiser of the quadratic model along `P(x - t g)` (BLNZ §4,
    Algorithm CP); `empty`: no pair is stored (`B = theta I`).

    The first `SCAN_BREAKPOINTS` breakpoints are passed one at a time, as in BLNZ,
    each found by a `min` (XLA's sort is slow on CPU, and the Cauchy point usually lies
    within the first few segments); beyond them all breakpoints are sorted and the
    segments evaluated `CHUNK` at a time with prefix sums, up to the first chunk that
    holds the minimiser (`lax.cond`: only one branch runs, except under `vmap`), or,
    with no pair stored (the first step, and after a reset), the minimiser comes in
    closed form: there the path passes most breakpoints of a large problem (6139 of
    the 10^4 of the obstacle QP's first step), and the sorted search was the costliest
    part of the whole solve (3 of its 36 ms).
    """
    t = breakpoints(x, g, lower, upper)
    found, t_scan = _scan_cauchy(g, t, b)
    if x.shape[0] < SCAN_BREAKPOINTS:
        # the scan passes every breakpoint (at most n, one per trip), so it finds the
        # minimiser: the sorted search would never run, and compiling it would double
        # this program
        t_star = t_scan
    else:
        further = lambda: lax.cond(empty, lambda: _steepest_cauchy(g, t, b), lambda: _sorted_cauchy(g, t, b))
        t_star = lax.cond(found, lambda: t_scan, further)
    x_cp = jnp.clip(x - t_star * g, lower, upper)
    return CauchyPoint(x=x_cp, free=t > t_star, t=t_star)


def max_step(x: Vector, d: Vector, lower: Vector, upper: Vector) -> Scalar:
    """The largest `alpha` with `x + alpha d` inside the bounds (`inf` if unlimited)."""
    to_up = jnp.where(d > 0, (upper - x) / jnp.where(d > 0, d, 1.0), jnp.inf)
    to_lo = jnp.where(d < 0, (lower - x) / jnp.where(d < 0, d, -1.0), jnp.inf)
    return jnp.maximum(jnp.min(jnp.minimum(to_up, to_lo), initial=jnp.inf), 0.0)


def subspace_point(
    x: Vector, g: Vector, lower: Vector, upper: Vector, b: Compact, cp: CauchyPoint,
    free_gram: Float[Array, "2m 2m"],
) -> Vector:
    """Minimise the model over the free variables at the Cauchy point (BLNZ §5.1,
    direct primal method) and return the new point `x_bar`, inside the bounds.

    With `Z` the free coordinates, the reduced gradient is `r = Z^T (g + theta (x_cp -
    x) - W M c)`, `c = W^T (x_cp - x)`, and the reduced matrix `theta I - Z^T W M W^T Z`,
    inverted by Sherman-Morrison-Woodbury: `d = -r / theta - Z^T W N^-1 M W^T Z r /
    theta^2` with `N = I - M W^T Z Z^T W / theta`. `W^T Z Z^T W` comes from `free_gram`
    (`[Y S]^T Z Z^T [Y S]`, kept up to date by `_compact.update_free`), so the step
    costs O(m n), not O(m^2 n): two products by `W^T` and one by `W` (`W^T Z r` comes
    from `free_gram` too, so `r` is never formed). `c` is recomputed from `x_cp` rather
    than carried along the Cauchy search: the accumulated one loses digits in float32
    on badly scaled problems. As in Morales & Nocedal (2011), the unconstrained subspace minimiser is
    projected onto the bounds; when that is not a descent direction from `x`, it is
    backtracked into the box instead (BLNZ eq. 5.8).
    """
    free, theta, scale = cp.free, b.theta, b.scale
    c = b.wt(cp.x - x)
    mc = b.middle @ c
    q = jnp.where(free, g + theta * (cp.x - x), 0.0)  # r = q - Z^T W M c
    wzw = free_gram * scale[:, None] * scale[None, :]
    n_mat = jnp.eye(wzw.shape[0], dtype=x.dtype) - (b.middle @ wzw) / theta
    # W^T Z r = W^T q - W^T Z Z^T W M c
    v = jnp.linalg.solve(n_mat, b.middle @ (b.wt(q) - wzw @ mc))
    # d = -r / theta - Z^T W v / theta^2, with one product by W
    d = jnp.where(free, -q / theta + b.w(mc / theta - v / theta**2), 0.0)
    d = jnp.where(jnp.isfinite(d), d, 0.0)
    projected = jnp.clip(cp.x + d, lower, upper)
    truncated = jnp.clip(cp.x + jnp.minimum(max_step(cp.x, d, lower, upper), 1.0) * d, lower, upper)
    return jnp.where(jnp.dot(projected - x, g) < 0, projected, truncated)
