"""SQP's subproblems at one iterate: the relaxed QP that gives the step `p`
(`relaxed_qp`), the second-order correction that follows it onto the active
constraints (`second_order_correction`), and the feasibility step that restores
the constraints (`feasibility_step`).

Notation as in `_sqp.py` (Nocedal & Wright ch. 18).
"""

import equinox as eqx
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Bool, Float, Scalar

from .._misc import eps, is_finite, max_norm
from .._typing import Vector
from ._qp import QP_SOLVED, solve_qp
from ._qp_pdas import ActiveSet, solve_qp_pdas
from ._sqp_point import _Point, violated


# QPs with at most this many unknowns (n + 1) are solved by the dual active-set method
# alone: its dense (2n + m)-row iterations cost microseconds there
SMALL_QP = 32


class QPStep(eqx.Module):
    """The relaxed QP's solution (zeros where it failed, `ok = False`).

    - `p`, `delta`: the step and the relaxation.
    - `lam_eq`, `lam_in`, `w`: multipliers of the linearised constraints, and of the
      bounds (`w = w_lower - w_upper`).
    - `active_in`, `active_lower`, `active_upper`: the QP's active sets.
    - `ok`: the QP was solved and its solution is finite.
    """

    p: Vector
    delta: Scalar
    lam_eq: Float[Array, " me"]
    lam_in: Float[Array, " mi"]
    w: Vector
    active_in: Bool[Array, " mi"]
    active_lower: Bool[Array, " n"]
    active_upper: Bool[Array, " n"]
    ok: Bool[Array, ""]


def relaxed_qp(pt: _Point, B, x, lower, upper, weight, delta_min, warm: QPStep) -> QPStep:
    """The QP subproblem with Powell's relaxation (Powell 1978; Schittkowski's NLPQL):

        min_{p, delta}  1/2 p.B p + g.p + weight delta + beta delta^2 / 2
        s.t.  J_eq p + (1 - delta) c_eq = 0
              J_in p + c_in - delta min(c_in, 0) >= 0
              lower - x <= p <= upper - x,   delta_min <= delta <= 1.

    `(p, delta) = (0, 1)` is always feasible (x lies inside the bounds), so the QP is
    consistent even where the linearised constraints are not; `delta = 0` recovers
    the plain SQP subproblem (N&W eq. 18.11) whenever `weight` exceeds the worth of
    the violation. The quadratic term (`beta = max(1, max diag B)`) keeps the Hessian
    positive definite, which the QP solvers need. A QP that failed (rounding,
    degenerate constraints) gives no step.

    Solved by the primal-dual active-set method (`_qp_pdas.py`: bounds as bounds,
    started from the active sets of `warm`, the previous step's QP), falling back to the dual
    active-set method of Goldfarb & Idnani (`_qp.py`, bounds as rows) where it does
    not settle; problems with at most `SMALL_QP` unknowns go straight to the latter,
    whose cost is negligible there. Either sees the constraint rows equilibrated
    (`_equilibrated`); the multipliers returned are those of the rows as given.
    """
    n, dtype = x.shape[0], x.dtype
    eye = jnp.eye(n, dtype=dtype)
    zn = jnp.zeros((n, 1), dtype)
    # delta's curvature is that of B's scale: a large `weight` enters only the linear
    # term, keeping G well conditioned
    # a relative ridge bounds G's condition number by ~1 / (100 eps), so that its
    # Cholesky factor (and the dual QP built on it) stays accurate where damped BFGS has
    # made B nearly singular: in float32 B's condition grows past 1 / eps within a few
    # steps near a solution (the modified-Cholesky idea of N&W §3.4)
    B = B + 100 * eps(B) * jnp.max(jnp.diag(B)) * eye
    G = jnp.block([[B, zn], [zn.T, jnp.maximum(1.0, jnp.max(jnp.diag(B))).reshape(1, 1)]])
    a = jnp.concatenate([pt.g, weight.reshape(1)])
    C = jnp.concatenate([jnp.concatenate([pt.J_eq, -pt.c_eq[:, None]], axis=1),
                         jnp.concatenate([pt.J_in, -jnp.minimum(pt.c_in, 0.0)[:, None]], axis=1)])
    b = jnp.concatenate([-pt.c_eq, -pt.c_in])
    # each row scaled by a power of 2 near its gradient's largest entry (exact in
    # floating point): constraints of very different scales (HS106: coefficients of
    # 2.5e-3 next to 1e3) leave the active set's Schur complement so ill-conditioned
    # that its ridge swamps the small rows, whose linearisations the QP then misses
    C, b, row_scale = _equilibrated(C, b, n)
    lo = jnp.concatenate([lower - x, jnp.asarray(delta_min, dtype).reshape(1)])
    up = jnp.concatenate([upper - x, jnp.ones(1, dtype)])
    is_eq = jnp.arange(C.shape[0]) < pt.c_eq.shape[0]
    dual = lambda: _dual_active_set(G, a, C, b, is_eq, lo, up)
    if n + 1 <= SMALL_QP:
        d, lam, w, active = dual()
    else:
        guess = ActiveSet(rows=jnp.concatenate([is_eq[:pt.c_eq.shape[0]], warm.active_in]),
                          at_lower=jnp.concatenate([warm.active_lower, (warm.delta <= 0).reshape(1)]),
                          at_upper=jnp.concatenate([warm.active_upper, jnp.zeros(1, bool)]))
        r = solve_qp_pdas(G, a, C, b, is_eq, lo, up, guess)
        d, lam, w, active = lax.cond(r.solved, lambda: (r.d, r.lam, r.w, r.active), dual)
    return _step_of(d, lam / row_scale, w, active, n, pt.c_eq.shape[0])


def _equilibrated(C, b, n):
    """`(C / r, b / r, r)` with `r_i` the power of 2 nearest the largest `|C_ij|`
    over the unknowns `j < n` (1 for a row without gradient): row equilibration, so
    that every constraint of the QP has unit scale (Golub & Van Loan 2013, §3.5.2);
    the multipliers of the scaled rows are those of the original ones times `r`."""
    size = jnp.max(jnp.abs(C[:, :n]), axis=1, initial=0.0)
    usable = (size > 0) & jnp.isfinite(size)
    r = jnp.where(usable, jnp.exp2(jnp.round(jnp.log2(jnp.where(usable, size, 1.0)))), 1.0)
    return C / r[:, None], b / r, r


def _dual_active_set(G, a, C, b, is_eq, lo, up):
    """`solve_qp` with the bounds as rows, `(d, lam, w, active)` as `solve_qp_pdas`
    gives them (NaN where it failed). The rows: `C`, then `p >= lower - x`,
    `-p >= x - upper`, `delta >= delta_min`, `-delta >= -1`."""
    n, m = G.shape[0] - 1, C.shape[0]
    eye = jnp.eye(n, n + 1, dtype=G.dtype)
    e_delta = jnp.eye(1, n + 1, n, dtype=G.dtype)
    rows = jnp.concatenate([C, eye, -eye, e_delta, -e_delta])
    qp = solve_qp(G, a, rows, jnp.concatenate([b, lo[:n], -up[:n], lo[n:], -up[n:]]),
                  jnp.concatenate([is_eq, jnp.zeros(2 * n + 2, bool)]))
    ok = qp.status == QP_SOLVED
    nan = lambda v: jnp.where(ok, v, jnp.nan)
    lam_lo = jnp.concatenate([qp.lam[m:m + n], qp.lam[m + 2 * n:m + 2 * n + 1]])
    lam_up = jnp.concatenate([qp.lam[m + n:m + 2 * n], qp.lam[m + 2 * n + 1:]])
    act_lo = jnp.concatenate([qp.active[m:m + n], qp.active[m + 2 * n:m + 2 * n + 1]])
    act_up = jnp.concatenate([qp.active[m + n:m + 2 * n], qp.active[m + 2 * n + 1:]])
    active = ActiveSet(rows=qp.active[:m], at_lower=act_lo, at_upper=act_up)
    return nan(qp.d), nan(qp.lam[:m]), nan(lam_lo - lam_up), active


def _step_of(d, lam, w, active: ActiveSet, n, me) -> QPStep:
    """The QP's solution as SQP's `QPStep` (the relaxation's own bound multiplier
    dropped), zeros where it is not finite."""
    ok = is_finite(d, lam, w)
    keep = lambda v: jnp.where(ok, v, 0.0)
    return QPStep(
        p=keep(d[:n]), delta=keep(d[n]), lam_eq=keep(lam[:me]), lam_in=keep(lam[me:]), w=keep(w[:n]),
        active_in=active.rows[me:], active_lower=active.at_lower[:n], active_upper=active.at_upper[:n], ok=ok,
    )


def second_order_correction(pt: _Point, trial: _Point, qp: QPStep) -> Vector:
    """The least-norm step `p_soc = -A^T (A A^T)^{-1} c_A(x + p)` on the QP's active
    set, `A` the active constraints' Jacobian at `x` (N&W eq. 15.36): it pulls the
    trial point back onto the active constraints, the remedy for the Maratos effect
    in N&W Alg. 18.3. Active bounds keep their coordinates where they are (rows
    `e_i` with residual 0): they are eliminated, so `A` holds only the active
    general rows on the free coordinates, and the system is `m x m`."""
    free = ~(qp.active_lower | qp.active_upper)
    A = jnp.concatenate([pt.J_eq, pt.J_in])
    rows = jnp.concatenate([jnp.ones(pt.c_eq.shape[0], bool), qp.active_in])
    resid = jnp.concatenate([trial.c_eq, trial.c_in])
    A = jnp.where(free[None, :], A, 0.0)
    rows = rows & (jnp.max(jnp.abs(A), axis=1, initial=0.0) > 0)
    A = jnp.where(rows[:, None], A, 0.0)
    M = A @ A.T + jnp.diag(jnp.where(rows, 0.0, 1.0).astype(A.dtype))
    # a relative ridge keeps dependent active gradients (LICQ failing) from breaking it
    M = M + 100 * eps(M) * jnp.max(jnp.diag(M), initial=1.0) * jnp.eye(M.shape[0], dtype=M.dtype)
    y = jnp.linalg.solve(M, jnp.where(rows, resid, 0.0))
    p_soc = -A.T @ y
    return jnp.where(jnp.all(jnp.isfinite(p_soc)), p_soc, 0.0)


def feasibility_step(pt: _Point, x: Vector, lower: Vector, upper: Vector, ftol, damping):
    """A Levenberg-Marquardt step on the squared violation, and the certificate that
    the violation is locally minimal.

    With `c_v` the violated constraints (equalities, inequalities below 0), `J_v` their
    Jacobian and `D = diag(max(|x_i|, 1))`, the gradient of `v(x) = ||c_v||^2 / 2` is
    `J_v^T c_v`, projected onto the bounds (coordinates at a bound that it pushes
    outward are held). The step solves, in the relative variables `q = D^{-1} p`,

        (Jh^T Jh + mu I) q = -D grad v,   Jh = J_v D,   mu = damping ||Jh||_F^2 + sqrt(eps) ||c_v||^2

    (Levenberg-Marquardt damped relative to `Jh^T Jh`'s scale, so that directions it
    does not see take no step from rounding; `damping` adapts as Marquardt's parameter
    does (Nielsen 1999): a third after a full step, divided by the step length the
    line search accepted otherwise, so it comes to stand for the curvature
    `sum_i c_i nabla^2 c_i` that Gauss-Newton misses where the violation's minimum is
    positive; Yamashita & Fukushima's `||c_v||^2` would converge only linearly there): the
    restoration step of IPOPT and of filter SQP minimises the violation alone
    (Wächter & Biegler 2006 §3.3; Fletcher & Leyffer 2002), here its smooth squared
    form, which, unlike the l1 form, has no kinks to stall on. Infeasibility is
    certified where that projected relative gradient vanishes to the precision level
    of the shared guard (`_stopping`) with `v` in place of f:

        ||D P(J_v^T c_v)||_inf <= ftol^(1/3) ||c_v||^2,

    a stationary point of the violation with the violation positive: a relative step
    of size 1 reduces `||c_v||` by at most that fraction to first order (local
    infeasibility, Byrd, Curtis & Nocedal 2010; IPOPT's test of the restoration
    phase converging to a point with nonzero violation).

    Returns `(p, slope, certified)`, `slope` the directional derivative of `v` along `p`.
    """
    c_v, J_v = violated(pt)
    grad = J_v.T @ c_v
    held = ((x <= lower) & (grad > 0)) | ((x >= upper) & (grad < 0))
    D = jnp.maximum(jnp.abs(x), 1.0)
    Jh = jnp.where(held[None, :], 0.0, J_v * D[None, :])
    gh = jnp.where(held, 0.0, D * grad)
    size = jnp.sum(c_v**2)
    certified = max_norm(gh) <= jnp.cbrt(ftol) * size
    n = x.shape[0]
    mu = damping * jnp.sum(Jh**2) + jnp.sqrt(eps(x)) * size + jnp.finfo(x.dtype).tiny
    M = Jh.T @ Jh + mu * jnp.eye(n, dtype=x.dtype)
    q = jnp.linalg.solve(M, -gh)
    p = D * q
    ok = jnp.all(jnp.isfinite(p))
    p = jnp.where(ok, p, 0.0)
    return p, jnp.dot(gh, jnp.where(ok, q, 0.0)), certified & ok
