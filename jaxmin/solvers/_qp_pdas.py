"""A convex QP solver with bounds handled as bounds and a warm-started active set:
the primal-dual active-set method (Hintermüller, Ito & Kunisch 2002; Bergounioux,
Ito & Kunisch 1999), for SQP's subproblems at medium `n`.

Solves

    min_d  1/2 d.G d + a.d   s.t.  C_i.d = b_i (i with is_eq),  C_i.d >= b_i (others),
                                   lower <= d <= upper

for a symmetric positive definite `G`. Each iteration takes a guess of the active
set (bounds at which coordinates sit, which inequality rows hold with equality),
solves the equality-constrained QP of that guess, and replaces the guess by the one
its solution and multipliers predict: a coordinate or row whose multiplier has the
wrong sign leaves, a violated one enters, all at once. It stops when the guess
repeats: the solution is then primal and dual feasible, the (unique) minimiser, with
an exact active set. On convex QPs whose Hessian is an M-matrix (the simplex
projection, `G = I`) the iteration converges in a few steps (the semismooth Newton
view of the same paper: locally superlinear); in general it may cycle, so it is
capped at `max_steps` and reports `solved = False`, and the caller falls back to
the dual active-set method of `_qp.py`.

Cost per iteration: the coordinates fixed at a bound are eliminated, so the
equality-constrained QP needs one Cholesky factor of `G` on the free coordinates
(gathered into a block of the smallest of a few static sizes that holds them), and
one of the Schur complement on the active general rows (`m x m`, `m` the number of
general rows only): bounds never enter a dense system as rows. Started from the active set of the previous SQP step,
it usually ends in one or two iterations.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Bool, Float, Int

from .._misc import eps, is_finite, max_norm
from .._typing import Vector
from ._qp import cho_solve


class ActiveSet(eqx.Module):
    """A guess of (or the final) active set: general rows active, coordinates at
    their lower bound, coordinates at their upper bound."""

    rows: Bool[Array, " m"]
    at_lower: Bool[Array, " n"]
    at_upper: Bool[Array, " n"]


class PDASResult(eqx.Module):
    """`solve_qp_pdas`'s outcome: the minimiser `d`; `lam` per general row (`>= 0` on
    inequality rows, 0 off the active set) and `w = w_lower - w_upper` per coordinate,
    with `G d + a = C^T lam + w`; the final `active` set; `solved` (converged, finite,
    feasible to rounding); `num_steps`."""

    d: Vector
    lam: Float[Array, " m"]
    w: Vector
    active: ActiveSet
    solved: Bool[Array, ""]
    num_steps: Int[Array, ""]


def _solve_active(G, a, C, b, lower, upper, guess: ActiveSet, size: int):
    """The equality-constrained QP of `guess`: coordinates at a bound fixed there,
    active rows as equalities; returns `(d, lam, w)` with `w = G d + a - C^T lam` on
    the fixed coordinates (0 on the free ones). The free coordinates (at most `size`
    of them, a static bound) are gathered into `size x size` blocks, so the dense
    factor has the size the free subspace needs, not `n`. One pass of iterative
    refinement (Higham 2002 ch. 12) recovers the accuracy lost where `|G^{-1} a|` is
    much larger than `d` (SQP near its solution)."""
    fixed = guess.at_lower | guess.at_upper
    d_fix = jnp.where(guess.at_lower, lower, jnp.where(guess.at_upper, upper, 0.0))
    idx = jnp.argsort(fixed, stable=True)[:size]  # the free coordinates first
    slot = ~fixed[idx]  # slots holding a free coordinate (the rest is padding)
    G_f = jnp.where(slot[:, None] & slot[None, :], G[idx][:, idx], 0.0) + jnp.diag((~slot).astype(G.dtype))
    L = lax.linalg.cholesky(G_f)
    C_f = jnp.where(guess.rows[:, None] & slot[None, :], C[:, idx], 0.0)
    if C.shape[0]:
        GiCt = cho_solve(L, C_f.T)  # (size, m)
        S = C_f @ GiCt + jnp.diag((~guess.rows).astype(G.dtype))
        # a ridge (as in `_qp.solve_qp`) keeps a guess with dependent active rows (e.g.
        # a row whose coordinates are all fixed) from breaking the factor; the
        # iterations go on, and a final active set that stays inconsistent fails the
        # feasibility check
        S = S + 10 * eps(G) * jnp.maximum(jnp.max(jnp.abs(jnp.diag(S))), 1.0) * jnp.eye(S.shape[0], dtype=S.dtype)
        LS = lax.linalg.cholesky(S)
        schur = lambda r: cho_solve(LS, r)
    else:
        GiCt, schur = jnp.zeros((size, 0), G.dtype), lambda r: r

    def solve(r_d, r_p):
        # G_f d_f - C_f^T lam = r_d (free part), C_f d_f = r_p (active rows)
        Gi_rd = cho_solve(L, jnp.where(slot, r_d[idx], 0.0))
        lam = schur(jnp.where(guess.rows, r_p - C_f @ Gi_rd, 0.0))
        d_f = jnp.where(slot, Gi_rd + GiCt @ lam, 0.0)
        return jnp.zeros_like(r_d).at[idx].add(d_f), jnp.where(guess.rows, lam, 0.0)

    def residuals(d, lam):
        return -(G @ d + a - C.T @ lam), jnp.where(guess.rows, b - C @ d, 0.0)

    d_free, lam = solve(*residuals(d_fix, jnp.zeros_like(b)))
    d = d_fix + d_free
    r_d, r_p = residuals(d, lam)
    dd, dlam = solve(r_d, r_p)
    d, lam = d + dd, lam + dlam
    w = jnp.where(fixed, G @ d + a - C.T @ lam, 0.0)
    return d, lam, w


def _solve_active_sized(G, a, C, b, lower, upper, guess: ActiveSet):
    """`_solve_active` with the smallest of the sizes 16, 64, 256, ... (up to `n`)
    that holds the free coordinates: a `lax.switch`, one compiled branch a size."""
    n = G.shape[0]
    sizes = [s for s in (16, 64, 256, 1024, 4096) if s < n] + [n]
    num_free = jnp.sum(~(guess.at_lower | guess.at_upper))
    branch = sum((num_free > s).astype(jnp.int32) for s in sizes[:-1]) if len(sizes) > 1 else 0
    branches = [lambda g, s=s: _solve_active(G, a, C, b, lower, upper, g, s) for s in sizes]
    return lax.switch(branch, branches, guess) if len(sizes) > 1 else branches[0](guess)


def _next_guess(G, a, C, b, is_eq, lower, upper, d, lam, w, guess: ActiveSet) -> ActiveSet:
    """The active set that `(d, lam, w)` predicts: leave where the multiplier has the
    wrong sign beyond its rounding, enter where violated beyond the rounding of the
    residual (100 eps times the magnitude of its terms, as in `_qp.solve_qp`)."""
    e = 100 * eps(G)
    s = C @ d - b
    row_tol = e * (jnp.abs(b) + jnp.abs(C) @ jnp.abs(d))
    lam_tol = e * (jnp.abs(C) @ jnp.abs(d) + jnp.abs(b) + max_norm(lam))
    rows = is_eq | jnp.where(guess.rows, lam >= -lam_tol, s < -row_tol)
    w_tol = e * (jnp.abs(G) @ jnp.abs(d) + jnp.abs(a) + jnp.abs(C.T) @ jnp.abs(lam))
    pinned = lower == upper
    below = d < lower - e * (jnp.abs(lower) + jnp.abs(d))
    above = d > upper + e * (jnp.abs(upper) + jnp.abs(d))
    at_lower = pinned | jnp.where(guess.at_lower, w >= -w_tol, ~guess.at_upper & below)
    at_upper = ~at_lower & jnp.where(guess.at_upper, w <= w_tol, ~guess.at_lower & above)
    return ActiveSet(rows=rows, at_lower=at_lower, at_upper=at_upper)


def _one_change(guess: ActiveSet, new: ActiveSet) -> ActiveSet:
    """`guess` with only the first of `new`'s changes (rows first, then coordinates):
    Murty's least-index principal pivoting (Murty 1974), which cannot cycle on the
    linear complementarity problem of a strictly convex QP (a P-matrix problem)."""
    m = guess.rows.shape[0]
    changed = jnp.concatenate([new.rows != guess.rows, (new.at_lower != guess.at_lower)
                               | (new.at_upper != guess.at_upper)])
    i = jnp.argmax(changed)
    row, col = (jnp.arange(m) == i), (jnp.arange(guess.at_lower.shape[0]) == i - m)
    return ActiveSet(rows=jnp.where(row, new.rows, guess.rows), at_lower=jnp.where(col, new.at_lower, guess.at_lower),
                     at_upper=jnp.where(col, new.at_upper, guess.at_upper))


def solve_qp_pdas(G, a, C, b, is_eq, lower, upper, warm: ActiveSet, max_steps: int = 40,
                  bulk_steps: int = 10) -> PDASResult:
    """Minimise `1/2 d.G d + a.d` subject to `C d = b` on the rows where `is_eq`,
    `C d >= b` on the others and `lower <= d <= upper` (infinite bounds never bind),
    by primal-dual active-set iterations from the guess `warm` (see the module
    docstring): `bulk_steps` iterations that change the guess wholesale, then
    (where those have not settled: they may cycle unless `G` is an M-matrix) one
    change per iteration by the least-index rule (`_one_change`). `G` must be
    positive definite. Where the iterations do not settle within `max_steps`, or the
    last solve is not finite or leaves an active row violated beyond rounding
    (dependent rows), `solved` is false."""
    finite_lo, finite_up = jnp.isfinite(lower), jnp.isfinite(upper)
    clean = lambda g: ActiveSet(rows=g.rows | is_eq, at_lower=g.at_lower & finite_lo,
                                at_upper=g.at_upper & finite_up & ~(g.at_lower & finite_lo))

    def cond(carry):
        k, _, _, _, _, settled = carry
        return ~settled & (k < max_steps)

    def body(carry):
        k, guess, *_ = carry
        d, lam, w = _solve_active_sized(G, a, C, b, lower, upper, guess)
        new = clean(_next_guess(G, a, C, b, is_eq, lower, upper, d, lam, w, guess))
        same = (jnp.all(new.rows == guess.rows) & jnp.all(new.at_lower == guess.at_lower)
                & jnp.all(new.at_upper == guess.at_upper))
        settled = same | ~is_finite(d, lam)
        new = jax.tree.map(lambda a, b: jnp.where(k < bulk_steps, a, b), new, _one_change(guess, new))
        kept = jax.tree.map(lambda a, b: jnp.where(settled, a, b), guess, new)
        return k + 1, kept, d, lam, w, settled

    m, n = C.shape[0], G.shape[0]
    start = (jnp.array(0, jnp.int32), clean(warm), jnp.zeros(n, G.dtype), jnp.zeros(m, G.dtype),
             jnp.zeros(n, G.dtype), jnp.array(False))
    k, active, d, lam, w, settled = lax.while_loop(cond, body, start)
    s = C @ d - b
    row_tol = 1e3 * eps(G) * (jnp.abs(b) + jnp.abs(C) @ jnp.abs(d)) + jnp.finfo(G.dtype).tiny
    feasible = jnp.all(jnp.where(active.rows, jnp.abs(s) <= row_tol, True))
    solved = settled & is_finite(d, lam, w) & feasible
    # multipliers within rounding of 0 on the wrong side are 0 (a coordinate pinned by
    # equal bounds takes either sign)
    lam = jnp.where(is_eq, lam, jnp.maximum(lam, 0.0))
    pinned = lower == upper
    w = jnp.where(pinned, w, jnp.where(active.at_lower, jnp.maximum(w, 0.0), jnp.minimum(w, 0.0)))
    return PDASResult(d=d, lam=lam, w=w, active=active, solved=solved, num_steps=k)
