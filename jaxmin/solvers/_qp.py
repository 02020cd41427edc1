"""A dense convex QP solver: the dual active-set method of Goldfarb & Idnani (1983).

Solves

    min_d  1/2 d.G d + a.d   s.t.  C_i.d = b_i (i with is_eq),  C_i.d >= b_i (others)

for a symmetric positive definite `G`, inside `jit` with fixed shapes: the active set
is a boolean mask over the rows of `C`, and every iteration solves the KKT system of
the current active set (inactive rows replaced by identity rows) with a dense LU.

Why this method (for SQP's subproblems): it starts from the unconstrained minimiser
`-G^{-1} a`, which is dual feasible, and adds the most violated constraint one at a
time, dropping active ones whose multiplier would turn negative (a partial step). It
ends in a finite number of iterations with an *exact* active set and multipliers
(what SQP's convergence test and the implicit KKT system need), it needs no feasible
start (SQP's linearised constraints rarely give one), and it detects infeasibility
(the added constraint is linearly dependent on the active ones and no multiplier can
be released). An interior-point method would need ~30 Newton steps per QP to reach
the same accuracy and gives active sets only approximately.

Rows whose `b_i` is `-inf` (infinite bounds) are never violated and never enter.
Notation (Goldfarb & Idnani): `z` the primal step direction, `r` the change of the
active multipliers per unit multiplier of the entering constraint `p`, `t1` the full
step (makes `p` active), `t2` the partial step (an active multiplier reaches 0).
"""

from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Bool, Float, Int

from .._misc import eps, max_norm
from .._typing import Vector

QP_SOLVED = 0
QP_INFEASIBLE = 1
QP_MAX_STEPS = 2


class QPResult(eqx.Module):
    """`solve_qp`'s outcome.

    - `d`: the minimiser (the last iterate if `status != QP_SOLVED`).
    - `lam`: one multiplier per row, `G d + a = C^T lam`; `lam >= 0` on inequality rows,
      0 on inactive rows.
    - `active`: the active set at `d`.
    - `status`: `QP_SOLVED`, `QP_INFEASIBLE` or `QP_MAX_STEPS`.
    - `num_steps`: iterations (constraints added or dropped).
    """

    d: Vector
    lam: Float[Array, " m"]
    active: Bool[Array, " m"]
    status: Int[Array, ""]
    num_steps: Int[Array, ""]


def cho_solve(L, b):
    """`A^{-1} b` from the Cholesky factor `L` of `A` (`b` a vector or a matrix)."""
    b2 = b.reshape(b.shape[0], -1)
    y = lax.linalg.triangular_solve(L, b2, left_side=True, lower=True)
    return lax.linalg.triangular_solve(L, y, left_side=True, lower=True, transpose_a=True).reshape(b.shape)


class _QPData(NamedTuple):
    """What the dual iterations read: the problem, and what `solve_qp` computes once."""

    G: Float[Array, "n n"]
    C: Float[Array, "m n"]
    b: Float[Array, " m"]  # infinite entries zeroed
    is_eq: Bool[Array, " m"]
    valid: Bool[Array, " m"]  # b finite: rows that can be violated
    C_abs: Float[Array, "m n"]  # |C|, for the rounding level of the residuals
    GiC: Float[Array, "n m"]  # G^{-1} C^T
    P: Float[Array, "m m"]  # C G^{-1} C^T
    g_scale: Float[Array, ""]  # max |G_ij| and 1000 eps: the linear-dependence test's scales
    tiny: Float[Array, ""]
    max_steps: int


class _DualState(NamedTuple):
    """The dual iterations' carry (Goldfarb & Idnani's notation)."""

    d: Vector  # the primal iterate
    d_ref: Vector  # where the iterations started, -G^{-1} a
    lam: Float[Array, " m"]  # multipliers of the active rows, as signed by `sign`
    active: Bool[Array, " m"]
    sign: Float[Array, " m"]  # -1 for an equality row entered from above (negated)
    p: Int[Array, ""]  # the constraint being added, -1 when none is
    status: Int[Array, ""]
    k: Int[Array, ""]  # iterations: constraints added or dropped
    done: Bool[Array, ""]


def solve_qp(G, a, C, b, is_eq, max_steps: int | None = None) -> QPResult:
    """Minimise `1/2 d.G d + a.d` subject to `C d = b` on the rows where `is_eq`,
    `C d >= b` on the others (Goldfarb & Idnani, 1983). `G` must be positive definite.

    A row counts as violated when its residual exceeds `100 eps (|b_i| + sum_j |C_ij|
    (|d_j| + |d0_j|))` (in `G`'s dtype), `d0 = -G^{-1} a` the point the dual iterations
    start from: a hundred times the rounding error of the residual `C_i.d - b_i`, `d`
    included, which carries the rounding of the terms it was summed from (Higham 2002,
    §3.1). So a row is never added for rounding alone (which, for a row dependent on
    the active ones, would end the solve as infeasible), and no absolute floor hides a
    real violation where the data are small (a floor `100 eps` would pass the step of a
    float32 SQP near its solution, 1e-6 across a bound, as feasible, leaving the bound
    inactive and its multiplier 0). The final active set's solution is then refined
    (`_refine`). `max_steps` defaults to `3 (n + m) + 10`.
    """
    n, m = G.shape[0], C.shape[0]
    dtype = G.dtype
    if max_steps is None:
        max_steps = 3 * (n + m) + 10
    valid = jnp.isfinite(b)
    b = jnp.where(valid, b, 0.0)
    C_abs = jnp.abs(C)
    g_scale = jnp.max(jnp.abs(G))
    tiny = 1e3 * eps(G)
    # G^{-1} C^T and C G^{-1} C^T once: each iteration then solves only with the
    # (m x m) Schur complement of the active set, A G^{-1} A^T, by Cholesky
    L = lax.linalg.cholesky(G)
    GiC = cho_solve(L, C.T)  # (n, m)
    P = C @ GiC
    d0 = -cho_solve(L, a)
    if m == 0:
        zero = jnp.array(0, jnp.int32)
        return QPResult(d=d0, lam=jnp.zeros(0, dtype), active=jnp.zeros(0, bool), status=zero, num_steps=zero)
    data = _QPData(G, C, b, is_eq, valid, C_abs, GiC, P, g_scale, tiny, max_steps)
    init = _DualState(
        d0, d0, jnp.zeros(m, dtype), jnp.zeros(m, bool), jnp.ones(m, dtype),
        jnp.array(-1, jnp.int32), jnp.array(QP_SOLVED, jnp.int32), jnp.array(0, jnp.int32),
        jnp.array(False),
    )
    out = lax.while_loop(lambda state: ~state.done, lambda state: _dual_iteration(data, state), init)
    lam = jnp.where(out.active, out.sign * out.lam, 0.0)
    d, lam = _refine(G, a, C, b, L, GiC, P, out.d, lam, out.active, is_eq)
    return QPResult(d=d, lam=lam, active=out.active, status=out.status.astype(jnp.int32), num_steps=out.k)


def _dual_iteration(data: _QPData, state: _DualState) -> _DualState:
    """One iteration of Goldfarb & Idnani: choose the entering constraint `p` (the most
    violated one, when none is being added), the step directions, and the step: full
    (`p` becomes active), partial (an active multiplier reaches 0 and its row leaves)
    or none (`p` is dependent on the active rows and nothing can leave: infeasible)."""
    s, p, sign, finished = _entering_constraint(data, state)
    r, z, Ps = _step_directions(data, state.active, sign, p)
    t1, dependent = _full_step(data, state.active, sign, p, s, Ps, r)
    t2, j = _partial_step(data, state.lam, state.active, r)
    t = jnp.minimum(t1, t2)
    infeasible = ~finished & ~jnp.isfinite(t)
    go = ~finished & ~infeasible
    t = jnp.where(go, t, 0.0)
    full = go & (t1 <= t2)
    partial = go & ~full
    d = state.d + jnp.where(dependent, 0.0, t) * z
    lam = jnp.where(state.active, state.lam - t * r, state.lam)
    lam = lam.at[p].add(t)
    active = jnp.where(full, state.active.at[p].set(True), state.active)
    active = jnp.where(partial, active.at[j].set(False), active)
    lam = jnp.where(partial, lam.at[j].set(0.0), lam)
    p = jnp.where(full | finished, -1, p).astype(jnp.int32)
    k = state.k + go.astype(jnp.int32)
    status = jnp.where(infeasible, QP_INFEASIBLE, jnp.where(go & (k >= data.max_steps), QP_MAX_STEPS, state.status))
    done = finished | infeasible | (k >= data.max_steps)
    return _DualState(d, state.d_ref, lam, active, sign, p, status, k, done)


def _entering_constraint(data: _QPData, state: _DualState):
    """`(s, p, sign, finished)`: the residuals `s = C d - b`, the constraint being added
    (the most violated one, beyond the rounding level of `solve_qp`'s docstring, when
    none is), the row signs (an equality violated from above enters negated), and
    whether no row is violated (the solve is done)."""
    s = data.C @ state.d - data.b
    v = jnp.where(data.is_eq, jnp.abs(s), jnp.maximum(-s, 0.0))
    tol = 100 * eps(data.G) * (jnp.abs(data.b) + data.C_abs @ (jnp.abs(state.d) + jnp.abs(state.d_ref)))
    v = jnp.where(state.active | ~data.valid, 0.0, v - tol)
    q = jnp.argmax(v).astype(jnp.int32)
    choose = state.p < 0
    finished = choose & (v[q] <= 0)
    p = jnp.where(choose, q, state.p)
    entering_sign = jnp.where(data.is_eq[q] & (s[q] > 0), -1.0, 1.0)
    sign = jnp.where(choose & ~finished, state.sign.at[q].set(entering_sign), state.sign)
    return s, p, sign, finished


def _active_schur_factor(P, active, G):
    """The Cholesky factor of the active rows' Schur complement `A G^{-1} A^T` (`P`'s
    active block, identity on the inactive rows), with a ridge of `10 eps` times its
    largest diagonal entry."""
    m, dtype = P.shape[0], G.dtype
    both = jnp.outer(active, active)
    S = jnp.where(both, P, 0.0) + jnp.diag(jnp.where(active, 0.0, 1.0).astype(dtype))
    S = S + 10 * eps(G) * jnp.max(jnp.abs(jnp.diag(S))) * jnp.eye(m, dtype=dtype)
    return lax.linalg.cholesky(S)


def _step_directions(data: _QPData, active, sign, p):
    """`(r, z, Ps)`: Goldfarb & Idnani's step directions for the signed row `n_p`:
    `G z + A^T r = n_p`, `A z = 0` for the active rows `A`, so `r = (A G^{-1} A^T)^{-1}
    A G^{-1} n_p`, `z = G^{-1} (n_p - A^T r)`; multipliers move as `lam - t r`. `Ps`:
    `C G^{-1} C^T` with the rows signed."""
    Ps = data.P * jnp.outer(sign, sign)
    r = cho_solve(_active_schur_factor(Ps, active, data.G), jnp.where(active, Ps[:, p], 0.0))
    r = jnp.where(active, r, 0.0)
    z = data.GiC[:, p] * sign[p] - data.GiC @ (sign * r)
    return r, z, Ps


def _full_step(data: _QPData, active, sign, p, s, Ps, r):
    """`(t1, dependent)`: the step length that makes `p` active, infinite where `n_p`
    is dependent on the active rows: where adding it leaves no curvature, or where `n`
    rows are active already (`n` independent rows fix `d`: a further one is dependent
    whatever rounding makes of its curvature, e.g. in float32 with an ill-conditioned
    `G`)."""
    n_p = sign[p] * data.C[p]
    s_p = sign[p] * s[p]
    curvature = Ps[p, p] - jnp.dot(Ps[p], r)
    full_rank = jnp.sum(active) >= data.G.shape[0]
    threshold = data.tiny * jnp.dot(n_p, n_p) / jnp.maximum(data.g_scale, data.tiny)
    dependent = (curvature <= threshold) | full_rank
    t1 = jnp.where(dependent, jnp.inf, -s_p / jnp.where(dependent, 1.0, curvature))
    return t1, dependent


def _partial_step(data: _QPData, lam, active, r):
    """`(t2, j)`: the step length at which the first active inequality multiplier
    reaches 0 (infinite where none falls), and its row `j`."""
    droppable = active & ~data.is_eq & (r > 0)
    ratios = jnp.where(droppable, lam / jnp.where(droppable, r, 1.0), jnp.inf)
    j = jnp.argmin(ratios)
    return ratios[j], j


def _refine(G, a, C, b, L, GiC, P, d, lam, active, is_eq, max_passes: int = 10):
    """Iterative refinement of `(d, lam)` on the final active set `A` (Wilkinson's
    refinement, Higham 2002 ch. 12, applied to the equality-constrained QP of the
    active set).

    The dual iterations reach `d` as `-G^{-1} a` plus corrections, so its absolute
    error is that of `G^{-1} a` (`eps |G^{-1} a|` times a condition number), however
    small `d` itself is: an SQP subproblem near its solution has `|G^{-1} a|` of order 1
    while `d` is tiny, and in float32 the active rows came out violated by ~1e-6, the
    size of the constraint values the step was meant to remove. Each pass solves for
    the correction from the residuals `r_d = G d + a - A^T lam` and `r_p = b_A - A d`
    (both small and computed accurately):

        (A G^{-1} A^T) mu = r_p + A G^{-1} r_d,   d += G^{-1} (A^T mu - r_d),   lam_A += mu

    with the same Cholesky factor of `G` and one of the active block of `C G^{-1} C^T`.
    Each pass contracts the error by about `cond(G) eps`, so where `G` is
    ill-conditioned several are needed: passes go on while the scaled residual
    shrinks, at most `max_passes`. Inequality multipliers are kept non-negative.
    """
    dtype = G.dtype
    LS = _active_schur_factor(P, active, G)
    C_abs, G_abs = jnp.abs(C), jnp.abs(G)

    # the residuals' rounding levels at the start: the magnitude of their terms
    r_scale_d = jnp.max(G_abs @ jnp.abs(d) + jnp.abs(a) + C_abs.T @ jnp.abs(lam))
    r_scale_p = jnp.max(jnp.where(active, jnp.abs(b) + C_abs @ jnp.abs(d), 0.0), initial=0.0)
    tiny = jnp.finfo(dtype).tiny

    def residual(d, lam):
        r_d = G @ d + a - C.T @ lam
        r_p = jnp.where(active, b - C @ d, 0.0)
        size = jnp.maximum(max_norm(r_d) / jnp.maximum(r_scale_d, tiny), max_norm(r_p) / jnp.maximum(r_scale_p, tiny))
        return r_d, r_p, size

    def cond(carry):
        k, _, _, _, _, _, improved = carry
        return (k < max_passes) & improved

    def body(carry):
        k, d, lam, r_d, r_p, size, _ = carry
        Gi_rd = cho_solve(L, r_d)
        mu = jnp.where(active, cho_solve(LS, jnp.where(active, r_p + C @ Gi_rd, 0.0)), 0.0)
        d_new = d + GiC @ mu - Gi_rd
        lam_new = lam + mu
        lam_new = jnp.where(active & ~is_eq, jnp.maximum(lam_new, 0.0), lam_new)
        r_d_new, r_p_new, size_new = residual(d_new, lam_new)
        improved = jnp.isfinite(size_new) & (size_new < size)
        keep = lambda new, old: jnp.where(improved, new, old)
        return (k + 1, keep(d_new, d), keep(lam_new, lam), keep(r_d_new, r_d), keep(r_p_new, r_p),
                keep(size_new, size), improved)

    r_d, r_p, size = residual(d, lam)
    start = (jnp.array(0, jnp.int32), d, lam, r_d, r_p, size, jnp.isfinite(size) & (size > eps(G)))
    _, d, lam, *_ = lax.while_loop(cond, body, start)
    return d, lam
