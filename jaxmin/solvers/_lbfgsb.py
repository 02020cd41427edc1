"""L-BFGS-B: limited-memory BFGS with bounds (Byrd, Lu, Nocedal & Zhu 1995; Zhu, Byrd,
Lu & Nocedal 1997, Algorithm 778; Morales & Nocedal 2011).

`jm.LBFGS` runs this when `minimize` is given `bounds=`. One iteration: the generalised
Cauchy point along the projected-gradient path, minimisation of the quadratic model over
the variables still free there, then a Moré–Thuente search along `d = x_bar - x`
capped at the largest feasible step. Every trial point is clipped into the box, so
the objective is never evaluated outside it.

Notation: `x, f, g`; direction `d`; step `alpha`; pairs `s = x+ - x`, `y = g+ - g`;
`theta = y.y / s.y`; bounds `lower`, `upper`; projected gradient `P(x - g) - x`.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, Scalar

from .._constraints import Constraints
from .._misc import eps, max_norm
from .._typing import Vector
from ..linesearch import MoreThuente
from ..linesearch._more_thuente import STPMAX, more_thuente_loop
from ._base import AbstractState
from ._cauchy import cauchy_point, compact, max_step, subspace_point
from ._search import start_point
from ._stopping import end_step, keep_reason, relative_optimality



class _LBFGSBState(AbstractState):
    # at the current iterate
    f: Scalar
    g: Vector
    pg: Vector  # the projected gradient step P(x - g) - x
    # curvature memory: ring buffers (newest pair in row (k - 1) % m) and their inner
    # products sy[i, j] = s_i.y_j, ss[i, j] = s_i.s_j, updated one row at a time
    s_hist: Float[Array, "m n"]
    y_hist: Float[Array, "m n"]
    sy: Float[Array, "m m"]
    ss: Float[Array, "m m"]
    k: Int[Array, ""]  # pairs stored since the last reset
    theta: Scalar
    first: Bool[Array, ""]  # no step taken yet
    flat_steps: Int[Array, ""]  # consecutive steps that left f unchanged
    # bookkeeping
    reason: Int[Array, ""]
    alpha: Scalar
    ls_evals: Int[Array, ""]
    num_fun_evals: Int[Array, ""]
    num_hvp_evals: Int[Array, ""]


def lbfgsb_init(solver, fn, x, args, constraints: Constraints) -> _LBFGSBState:
    f, g, reason = start_point(fn, x, args)
    m, n = solver.history_size, x.shape[0]
    zero = jnp.zeros((), x.dtype)
    return _LBFGSBState(
        f=f, g=g, pg=constraints.project(x - g) - x,
        s_hist=jnp.zeros((m, n), x.dtype), y_hist=jnp.zeros((m, n), x.dtype),
        sy=jnp.zeros((m, m), x.dtype), ss=jnp.zeros((m, m), x.dtype),
        k=jnp.array(0, jnp.int32), theta=jnp.ones((), x.dtype), first=jnp.array(True),
        flat_steps=jnp.array(0, jnp.int32), reason=reason,
        alpha=zero, ls_evals=jnp.array(0, jnp.int32),
        num_fun_evals=jnp.array(1, jnp.int32), num_hvp_evals=jnp.array(0, jnp.int32),
    )


def _search_constants(linesearch) -> MoreThuente:
    """The Moré–Thuente constants: the solver's own search if it is one, else
    L-BFGS-B's (`c1 = 1e-3`, `c2 = 0.9`, `xtol = 0.1`, 20 evaluations)."""
    return linesearch if isinstance(linesearch, MoreThuente) else MoreThuente()


def lbfgsb_step(solver, fn, x, state: _LBFGSBState, args, constraints: Constraints):
    lower, upper = constraints.lower, constraints.upper
    f, g, k, theta = state.f, state.g, state.k, state.theta
    b = compact(state.s_hist, state.y_hist, state.sy, state.ss, k, theta)
    cp = cauchy_point(x, g, lower, upper, b)
    # with no pairs the Cauchy point already minimises the model (B = theta I)
    x_bar = jnp.where(k > 0, subspace_point(x, g, lower, upper, b, cp), cp.x)
    d = x_bar - x
    gd = jnp.dot(g, d)
    descent = gd < 0

    # step cap: the largest feasible step (>= 1, since x + d = x_bar is feasible); on
    # the first iteration L-BFGS-B caps it at 1 when some bound is finite and starts
    # from 1/|d| unless every variable has both bounds (BLNZ §6; Zhu et al. 1997)
    bounded = jnp.isfinite(lower) | jnp.isfinite(upper)
    constrained, boxed = jnp.any(bounded), jnp.all(jnp.isfinite(lower) & jnp.isfinite(upper))
    cap = jnp.minimum(jnp.maximum(max_step(x, d, lower, upper), 1.0), STPMAX)
    cap = jnp.where(state.first & constrained, 1.0, cap).astype(x.dtype)
    d_norm = jnp.linalg.norm(d)
    stp0 = jnp.where(state.first & ~boxed, jnp.minimum(1 / jnp.where(d_norm > 0, d_norm, 1.0), cap), 1.0)

    def point(alpha):
        # x_bar itself at alpha = 1; any other trial clipped, so rounding never leaves the box
        return jnp.where(alpha == 1, x_bar, jnp.clip(x + alpha * d, lower, upper))

    f_and_g = lambda z: jax.value_and_grad(fn)(z, *args)
    search = _search_constants(solver.linesearch)
    d_search = jnp.where(descent, d, 0.0)
    ls = more_thuente_loop(search, f_and_g, point, f, g, d_search, stp0.astype(x.dtype), cap)
    # success: the last trial; failure: the best one (x itself if none decreased f)
    pick = lambda best, last: jnp.where(ls.converged, last, best)
    alpha, f_new = pick(ls.stx, ls.a), pick(ls.fx, ls.f)
    x_new, g_new, ok, n_evals = pick(ls.xx, ls.x), pick(ls.gx, ls.g), ls.converged, ls.n

    # how the step ended, as for the unbounded solvers (`_stopping.end_step`); a
    # failure resets the memory and retries from the Cauchy step, unless it was one
    accept = descent & (ok | (f_new < f))
    x_new = jnp.where(accept, x_new, x)
    f_trial = jnp.where(descent, f_new, f)
    f_new = jnp.where(accept, f_new, f)
    g_new = jnp.where(accept, g_new, g)
    pg = constraints.project(x_new - g_new) - x_new
    end = end_step(
        x=x, f=f, f_new=f_new, accepted=accept, moved=max_norm(x_new - x),
        predicted=-(gd + 0.5 * b.curvature(d)), at_precision=max_norm(d) <= 100 * eps(x) * max_norm(x),
        retry_possible=k > 0, trial_f=f_trial, optimality=relative_optimality(pg, x_new), flat_steps=state.flat_steps,
        ftol=solver.tolerance_ftol(x),
    )
    failed = end.failed
    s, y = x_new - x, g_new - g
    sy_new, yy = jnp.dot(s, y), jnp.dot(y, y)
    # curvature test of L-BFGS-B: skip the pair unless s.y > eps (-g.s)
    store = ~failed & (sy_new > eps(x) * -jnp.dot(g, s))
    row = k % solver.history_size
    s_hist = state.s_hist.at[row].set(jnp.where(store, s, state.s_hist[row]))
    y_hist = state.y_hist.at[row].set(jnp.where(store, y, state.y_hist[row]))
    sy_row, sy_col, ss_row = s @ y_hist.T, s_hist @ y, s_hist @ s
    sy_mat = jnp.where(store, state.sy.at[row].set(sy_row).at[:, row].set(sy_col), state.sy)
    ss_mat = jnp.where(store, state.ss.at[row].set(ss_row).at[:, row].set(ss_row), state.ss)
    new_k = jnp.where(failed, 0, k + store.astype(jnp.int32))
    new_theta = jnp.where(store, yy / jnp.where(store, sy_new, 1.0), theta)
    new_theta = jnp.where(failed, 1.0, new_theta).astype(x.dtype)
    new_state = _LBFGSBState(
        f=f_new, g=g_new, pg=pg,
        s_hist=s_hist, y_hist=y_hist, sy=sy_mat, ss=ss_mat,
        k=new_k, theta=new_theta, first=jnp.array(False),
        flat_steps=end.flat_steps,
        reason=keep_reason(state.reason, end.reason),
        alpha=alpha,
        ls_evals=n_evals,
        num_fun_evals=state.num_fun_evals + n_evals,
        num_hvp_evals=state.num_hvp_evals,
    )
    return x_new, new_state


def lbfgsb_implicit_system(x: Vector, state: _LBFGSBState, constraints: Constraints):
    """Optimality conditions with the active bounds frozen (at the solution, a bound
    is active where `x` sits on it and the gradient pushes outward; `lower == upper`
    is always active):

        r(z) = D grad f(D z + (1 - D) b) + (1 - D)(z - b),

    `D` the free mask, `b` the active bound value. Active coordinates follow their bound
    (zero derivative with respect to `fn`'s parameters); free ones solve the reduced
    Hessian system. The Jacobian `D H D + (1 - D)` is symmetric, so CG applies.
    """
    g = state.g
    at_lower = (x <= constraints.lower) & ((g > 0) | (constraints.lower == constraints.upper))
    at_upper = (x >= constraints.upper) & (g < 0) & ~at_lower
    free = ~(at_lower | at_upper)

    def residual(z, fn, args, constraints):
        b = jnp.where(at_lower, constraints.lower, jnp.where(at_upper, constraints.upper, 0.0))
        z_fixed = jnp.where(free, z, b)
        return jnp.where(free, jax.grad(fn)(z_fixed, *args), z - b)

    return x, residual
