"""Line-search SQP with a damped-BFGS Lagrangian Hessian (Nocedal & Wright, Alg. 18.3).

Notation (N&W ch. 18): `x, f, g`; equality constraints `c_eq(x) = 0` with Jacobian
`J_eq`, inequalities `c_in(x) >= 0` with `J_in`, bounds `lower <= x <= upper`;
multipliers `lam_eq`, `lam_in >= 0` and `w = w_lower - w_upper` for the bounds, with
`g = J_eq^T lam_eq + J_in^T lam_in + w` at a KKT point; Hessian approximation `B`;
step `p`; relaxation variable `delta`; merit penalty `nu`.
"""

from typing import ClassVar, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jax import lax
from jaxtyping import Array, Bool, Float, Int, Scalar

from .._constraints import Constraints
from .._misc import as_dtype, below_precision, eps, is_finite, max_norm
from .._solution import Reason
from .._typing import ScalarLike, Vector
from ..linear import Lineax
from ..linesearch import Backtracking
from ._base import AbstractSolver, AbstractState
from ._lagrangian import damped_bfgs, lagrangian_hessian
from ._qp import QP_SOLVED, solve_qp
from ._stopping import at_precision_level, keep_reason, stall_reason, start_reason, terminate

_RHO_MAX = 1e10  # cap of the relaxation weight
_NU_MAX = 1e12  # cap of the merit penalty
# steps in a row with no progress (f, violation or KKT residual) after which SQP ends
# the solve itself as a stall (the driver loop's `PATIENCE` is a last resort)
SQP_PATIENCE = 20
# the fraction of the best linearised violation reduction a step must achieve before
# the feasibility step replaces it (Byrd, Nocedal & Waltz 2008, "steering" rule)
_STEER = 0.1


class _Point(eqx.Module):
    """`f`, `g`, constraint values and Jacobians at one `x`."""

    f: Scalar
    g: Vector
    c_eq: Float[Array, " me"]
    J_eq: Float[Array, "me n"]
    c_in: Float[Array, " mi"]
    J_in: Float[Array, "mi n"]


class _SQPState(AbstractState):
    # at the current iterate
    f: Scalar
    g: Vector
    c_eq: Float[Array, " me"]
    J_eq: Float[Array, "me n"]
    c_in: Float[Array, " mi"]
    J_in: Float[Array, "mi n"]
    # multipliers (eq, ineq) from the last QP; bound multipliers w = w_lower - w_upper
    multipliers: tuple
    w: Vector
    # active sets of the last QP (implicit differentiation uses them)
    active_in: Bool[Array, " mi"]
    active_lower: Bool[Array, " n"]
    active_upper: Bool[Array, " n"]
    # the damped-BFGS Lagrangian Hessian and the penalty parameters
    B: Float[Array, "n n"]
    num_updates: Int[Array, ""]
    nu: Scalar
    rho: Scalar
    delta: Scalar
    # convergence measures at the current iterate
    kkt: Scalar
    violation: Scalar
    flat_steps: Int[Array, ""]
    # progress watch: the best f (at a violation no worse than the best), violation and
    # KKT residual seen, and the steps since one improved
    best_f: Scalar
    best_violation: Scalar
    best_kkt: Scalar
    since: Int[Array, ""]
    restore_next: Bool[Array, ""]  # the next step is to be a feasibility (restoration) step
    unchanged: Bool[Array, ""]  # the last step changed the merit function within its rounding
    certified: Bool[Array, ""]  # x is (was) a stationary point of the violation above ctol
    damping: Scalar  # the feasibility step's Levenberg-Marquardt parameter (relative)
    restoring: Bool[Array, ""]  # in the restoration phase, entered at squared violation v2_entry
    v2_entry: Scalar
    v2_cap: Scalar  # the squared violation where restoration last ended: steps stay below
    best_v2: Scalar
    # bookkeeping
    reason: Int[Array, ""]
    alpha: Scalar
    ls_evals: Int[Array, ""]
    num_fun_evals: Int[Array, ""]
    num_hvp_evals: Int[Array, ""]


def _bounds(constraints: Constraints | None, x: Vector):
    if constraints is None or not constraints.has_bounds:
        inf = jnp.full_like(x, jnp.inf)
        return -inf, inf
    return constraints.lower.astype(x.dtype), constraints.upper.astype(x.dtype)


def _constraint_fns(constraints: Constraints | None):
    eq = None if constraints is None else constraints.eq
    ineq = None if constraints is None else constraints.ineq
    return eq, ineq


def _value_and_jac(c, x, args):
    """`(c(x), dc/dx)`, an empty `(0,)`/`(0, n)` pair where `c` is absent."""
    if c is None:
        return jnp.zeros(0, x.dtype), jnp.zeros((0, x.shape[0]), x.dtype)
    cx = c(x, *args)
    jac = jax.jacfwd if cx.shape[0] >= x.shape[0] else jax.jacrev
    return cx, jac(lambda z: c(z, *args))(x).reshape(cx.shape[0], x.shape[0])


def evaluate(fn, constraints, x: Vector, args: tuple) -> _Point:
    """f, its gradient and the constraints with their Jacobians at `x`."""
    eq, ineq = _constraint_fns(constraints)
    f, g = jax.value_and_grad(fn)(x, *args)
    c_eq, J_eq = _value_and_jac(eq, x, args)
    c_in, J_in = _value_and_jac(ineq, x, args)
    return _Point(f=f.astype(x.dtype), g=g, c_eq=c_eq, J_eq=J_eq, c_in=c_in, J_in=J_in)


def violation_l1(c_eq, c_in) -> Scalar:
    """The l1 constraint violation `||c_eq||_1 + ||min(c_in, 0)||_1`."""
    return jnp.sum(jnp.abs(c_eq)) + jnp.sum(jnp.maximum(-c_in, 0.0))


def violation_max(c_eq, c_in) -> Scalar:
    """The largest constraint violation (what `ctol` bounds)."""
    return jnp.maximum(max_norm(c_eq), max_norm(jnp.minimum(c_in, 0.0)))


def constraint_scales(pt: _Point, x: Vector):
    """The magnitude of each constraint's terms, `|c_i| + sum_j |J_ij x_j|` (exact for
    a linear constraint at a feasible point, within a small factor for polynomial
    ones): `eps` times it is the rounding error of `c_i(x)`, below which no solve can
    drive a violation (Higham 2002, §3.1, for the error of a sum)."""
    ax = jnp.abs(x)
    return jnp.abs(pt.c_eq) + jnp.abs(pt.J_eq) @ ax, jnp.abs(pt.c_in) + jnp.abs(pt.J_in) @ ax


def violation_floor(pt: _Point, x: Vector) -> Scalar:
    """The violation that rounding alone leaves: `10 eps` times the scale of the
    equalities and the violated inequalities (`constraint_scales`)."""
    s_eq, s_in = constraint_scales(pt, x)
    s_in = jnp.where(pt.c_in < 0, s_in, 0.0)
    return 10 * eps(x) * jnp.maximum(max_norm(s_eq), max_norm(s_in))


def merit_noise(pt: _Point, x: Vector, nu: Scalar) -> Scalar:
    """The rounding error of the merit function `f + nu violation` at `x`: `eps` times
    the magnitude of f's terms (`|f| + sum_j |g_j x_j|`, as for the constraints) plus
    `nu` times the constraints' (`constraint_scales`)."""
    s_eq, s_in = constraint_scales(pt, x)
    f_scale = jnp.abs(pt.f) + jnp.sum(jnp.abs(pt.g * x))
    return eps(x) * (f_scale + nu * (jnp.sum(s_eq) + jnp.sum(s_in)))


def _violated(pt: _Point):
    """The violated constraint values and their Jacobian rows: the equalities, and the
    inequalities below 0 (0 elsewhere)."""
    below = pt.c_in < 0
    c_v = jnp.concatenate([pt.c_eq, jnp.where(below, pt.c_in, 0.0)])
    J_v = jnp.concatenate([pt.J_eq, jnp.where(below[:, None], pt.J_in, 0.0)])
    return c_v, J_v


def violation_l2(c_eq, c_in) -> Scalar:
    """Half the squared l2 violation, `(||c_eq||^2 + ||min(c_in, 0)||^2) / 2`: smooth,
    it is what the feasibility step minimises."""
    return 0.5 * (jnp.sum(c_eq**2) + jnp.sum(jnp.minimum(c_in, 0.0) ** 2))


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
    c_v, J_v = _violated(pt)
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


def kkt_residual(pt: _Point, lam_eq, lam_in, w, x, lower, upper) -> Scalar:
    """The KKT residual's infinity norm: stationarity of the Lagrangian
    `g - J_eq^T lam_eq - J_in^T lam_in - w`, and complementarity `lam_in * c_in`,
    `w * (x - bound)` (multipliers from the last QP, functions at `x`)."""
    stationarity = pt.g - pt.J_eq.T @ lam_eq - pt.J_in.T @ lam_in - w
    gap = jnp.where(w > 0, x - lower, jnp.where(w < 0, upper - x, 0.0))
    gap = jnp.where(jnp.isfinite(gap), gap, 0.0)
    return jnp.maximum(
        max_norm(stationarity), jnp.maximum(max_norm(lam_in * jnp.maximum(pt.c_in, 0.0)), max_norm(w * gap))
    )


def relaxed_qp(pt: _Point, B, x, lower, upper, weight, delta_min=0.0):
    """The QP subproblem with Powell's relaxation (Powell 1978; Schittkowski's NLPQL):

        min_{p, delta}  1/2 p.B p + g.p + weight delta + beta delta^2 / 2
        s.t.  J_eq p + (1 - delta) c_eq = 0
              J_in p + c_in - delta min(c_in, 0) >= 0
              lower - x <= p <= upper - x,   0 <= delta <= 1.

    `(p, delta) = (0, 1)` is always feasible (x lies inside the bounds), so the QP is
    consistent even where the linearised constraints are not; `delta = 0` recovers
    the plain SQP subproblem (N&W eq. 18.11) whenever `weight` exceeds the worth of
    the violation. The quadratic term (`beta = max(1, max diag B)`) keeps the Hessian
    positive definite, which the dual active-set QP solver needs.
    """
    n, me, mi = x.shape[0], pt.c_eq.shape[0], pt.c_in.shape[0]
    dtype = x.dtype
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
    C = jnp.concatenate([
        jnp.concatenate([pt.J_eq, -pt.c_eq[:, None]], axis=1),
        jnp.concatenate([pt.J_in, -jnp.minimum(pt.c_in, 0.0)[:, None]], axis=1),
        jnp.concatenate([eye, zn], axis=1),
        jnp.concatenate([-eye, zn], axis=1),
        jnp.array([[0.0] * n + [1.0], [0.0] * n + [-1.0]], dtype),
    ])
    b = jnp.concatenate([-pt.c_eq, -pt.c_in, lower - x, x - upper,
                         jnp.stack([jnp.asarray(delta_min, dtype), jnp.array(-1.0, dtype)])])
    is_eq = jnp.arange(C.shape[0]) < me
    qp = solve_qp(G, a, C, b, is_eq)
    lam = qp.lam
    lam_eq, lam_in = lam[:me], lam[me:me + mi]
    w = lam[me + mi:me + mi + n] - lam[me + mi + n:me + mi + 2 * n]
    active_in = qp.active[me:me + mi]
    active_lower = qp.active[me + mi:me + mi + n]
    active_upper = qp.active[me + mi + n:me + mi + 2 * n]
    return qp, qp.d[:n], qp.d[n], lam_eq, lam_in, w, active_in, active_lower, active_upper


def second_order_correction(pt: _Point, trial: _Point, active_in, active_lower, active_upper):
    """The least-norm step `p_soc = -A^T (A A^T)^{-1} c_A(x + p)` on the QP's active
    set, `A` the active constraints' Jacobian at `x` (N&W eq. 15.36): it pulls the
    trial point back onto the active constraints, the remedy for the Maratos effect
    in N&W Alg. 18.3. Active bounds enter as rows `+-e_i` with residual 0, so the
    correction keeps those coordinates on their bounds."""
    n = pt.g.shape[0]
    eye = jnp.eye(n, dtype=pt.g.dtype)
    A = jnp.concatenate([pt.J_eq, pt.J_in, eye, eye])
    rows = jnp.concatenate([jnp.ones(pt.c_eq.shape[0], bool), active_in, active_lower, active_upper])
    resid = jnp.concatenate([trial.c_eq, trial.c_in, jnp.zeros(2 * n, pt.g.dtype)])
    rows = rows & (jnp.max(jnp.abs(A), axis=1) > 0)
    A = jnp.where(rows[:, None], A, 0.0)
    M = A @ A.T + jnp.diag(jnp.where(rows, 0.0, 1.0).astype(A.dtype))
    # a relative ridge keeps dependent active gradients (LICQ failing) from breaking it
    M = M + 100 * eps(M) * jnp.max(jnp.diag(M)) * jnp.eye(M.shape[0], dtype=M.dtype)
    y = jnp.linalg.solve(M, jnp.where(rows, resid, 0.0))
    p_soc = -A.T @ y
    return jnp.where(jnp.all(jnp.isfinite(p_soc)), p_soc, 0.0)


def _lagrangian_grad(pt: _Point, lam_eq, lam_in):
    return pt.g - pt.J_eq.T @ lam_eq - pt.J_in.T @ lam_in


class SQP(AbstractSolver[_SQPState]):
    """Sequential quadratic programming for `eq`, `ineq` and `bounds` (Nocedal & Wright,
    Alg. 18.3: line-search SQP with an l1 merit function and second-order correction).

    Each iteration solves a QP in the step `p`, built from the gradient, the
    linearised constraints and a quasi-Newton Lagrangian Hessian `B`, with the dual
    active-set method of Goldfarb & Idnani (`jaxmin/solvers/_qp.py`); then searches
    along `p` on the merit function `f + nu (||c_eq||_1 + ||min(c_in, 0)||_1)`.

    - *Inconsistent linearisations* (e.g. from an infeasible start): the QP is Powell's
      relaxation (as in SLSQP/NLPQL), the constraint values scaled by `1 - delta` with
      `delta in [0, 1]` penalised by `weight delta + beta delta^2 / 2`, `weight =
      rho (1 + nu) violation` (see `relaxed_qp`); `rho` grows 1000-fold whenever
      `delta > 0.1`, to 1e10 in float64 and `1 / (1000 eps)` (8e3) in float32, where a
      larger weight leaves the QP's step to rounding.
    - *Feasibility restoration* (Fletcher & Leyffer 2002; Wächter & Biegler 2006
      §3.3): where the constraints are violated and the QP had to relax them, a
      Levenberg-Marquardt step on the squared violation (`feasibility_step`) replaces
      `p` when `p` promises under a tenth of its linearised reduction (the steering
      rule of Byrd, Nocedal & Waltz 2008), or after a step along `p` that failed or
      got under 1% of its length; restoration goes on until the squared violation has
      fallen by a fifth, and steps along `p` after it may not end above the squared
      violation it ended at (that point is in the filter).
    - *Penalty*: `nu = max(1.01 t, (nu + t) / 2)` (Powell's update) for the target
      `t = max|lam|`, or, when the QP was relaxed (`delta > 0`), `t = (g.p + p.B p / 2) /
      ((1 - 0.5) (violation - linearised violation))` (N&W eq. 18.36); either makes `p` a
      descent direction of the merit function.
    - *Line search*: Armijo backtracking on the merit function with its directional
      derivative `g.p - nu (violation - linearised violation)` (N&W eq. 18.29), each
      step the safeguarded minimiser of a quadratic model (N&W §3.5). When the full
      step fails, the second-order correction (N&W §15.6, Alg. 18.3) is tried once
      before backtracking: the Maratos-effect remedy.
    - *Hessian*: dense `n x n`, Powell's damped BFGS update of the Lagrangian Hessian
      (N&W Procedure 18.2), positive definite throughout, skipped where `y` is
      rounding; reset to `I` after a failed line search or a step that left `x`
      unchanged (a second failure from `I` ends the solve: `LINESEARCH_FAILED`, or
      `STAGNATED`/`PRECISION` where the predicted decrease is below rounding). The QP
      adds a ridge of `100 eps max diag(B)` so its Cholesky factor stays accurate.
    - *Convergence test* at `x` with the new QP's multipliers before the line search
      (a solution costs no further evaluation), and at the new iterate after it.
    - *Attainable precision* (`PRECISION`, `_stopping`): at `x`, feasible to the
      constraints' rounding (`violation_floor`), the last step changed the merit
      function within its rounding, the QP's predicted decrease is lost in it too
      and the relative KKT residual passes the shared guard.
    - *Stagnation*: `SQP_PATIENCE` (20) steps in a row in which neither f (at a
      violation no worse), the violation, the squared violation nor the KKT residual
      improved end the solve (well before the driver loop's watch): `PRECISION` or
      `HOVERING` by the shared guard where feasible, else `CONSTRAINTS_STALLED`
      (the violation, above `ctol`, blocks; the message names `ctol`).
    - *Bounds* are rows of the QP (`lower - x <= p <= upper - x`), so every trial point
      `x + alpha p` lies inside them (and is clipped against rounding): objectives
      undefined outside the bounds are fine.

    Converges when the KKT residual (Lagrangian gradient, complementarity) has
    infinity norm `<= gtol` and the largest constraint violation is `<= ctol`.
    `verbose=True` prints that residual as `kkt`.
    `INFEASIBLE` when the violation exceeds `ctol` at a stationary point of the
    squared violation (a local infeasibility certificate, see `feasibility_step`;
    Byrd, Curtis & Nocedal 2010), checked wherever the QP had to be relaxed: from
    there `delta` is pinned to 1 and the steps decrease f without letting the
    violation grow, and the solve ends `INFEASIBLE` when that phase converges or
    stalls (its `x` minimises the violation, and f as far as that allows). A point
    where the constraints' gradients vanish (a maximiser of the violation) passes
    the certificate too. `Solution.multipliers = (lam_eq, lam_in)` with
    `g = J_eq^T lam_eq + J_in^T lam_in + w` (`w`: bound multipliers, `state.w`).

    **Derivatives** (`jax.grad`/`jacfwd`/`jacrev` of the solution): the implicit
    function theorem on the KKT conditions of the final QP's active set: stationarity
    of the Lagrangian, the equalities and active inequalities as equations, inactive
    inequalities' multipliers pinned to 0, active bounds pinning `x_i` to the bound
    (so bound tangents flow into `x`) and free coordinates' bound multipliers to 0.
    Its Jacobian is indefinite; the default solver is a dense LU
    (`jm.linear.Lineax(lx.LU())`). At degenerate points the derivative is one-sided
    or undefined, and nothing raises:
    - a weakly active constraint (active with multiplier 0) is treated as active: the
      derivative is that of the solution kept on it (one-sided);
    - duplicated or otherwise dependent constraints that the QP solver never made
      active together (it adds only independent ones) are harmless;
    - where the active gradients are (nearly) linearly dependent, i.e. LICQ fails at
      the solution, the KKT matrix is singular or nearly so: the multipliers the
      solve reports have blown up (HS13: ~1e6, where none exist at the minimiser) and
      the LU solve returns NaN/inf or inaccurate derivatives. Check
      `sol.multipliers` before trusting derivatives there.

    **Arguments:**

    - `linesearch`: a `jm.linesearch.Backtracking`, whose `c1`, `shrink` and
      `max_steps` are used on the merit function.
    - `gtol`: KKT residual tolerance.
    - `ctol`: constraint violation tolerance; `None` (default): `max(1e-8, 10 eps)` of
      the solve's dtype, 1e-8 in float64 and 1.2e-6 in float32.
    - `ftol`: the precision tolerance of `_stopping` (`None`: `eps / 4`).
    - `exact_hessian`: use the exact Hessian of the Lagrangian (at the last
      multipliers; `n` Hessian-vector products per iteration, counted in
      `num_hvp_evals`), made positive definite by flipping and flooring its
      eigenvalues, instead of damped BFGS. For small `n` with cheap second
      derivatives; fewer iterations near a solution.
    """

    linesearch: Backtracking = Backtracking(c1=1e-4, shrink=0.5, max_steps=30)
    gtol: ScalarLike = 1e-6
    ctol: Optional[ScalarLike] = None
    exact_hessian: bool = eqx.field(default=False, static=True)
    ftol: Optional[ScalarLike] = None  # last: existing positional arguments keep their places

    takes_bounds: ClassVar[bool] = True
    takes_constraints: ClassVar[bool] = True

    def __check_init__(self):
        if not isinstance(self.linesearch, Backtracking):
            raise TypeError("`SQP(linesearch=...)` must be a `jm.linesearch.Backtracking`: "
                            "the merit function is not smooth, so Wolfe searches do not apply.")
        for name in ("gtol", "ctol", "ftol"):
            value = getattr(self, name)
            if isinstance(value, (int, float)) and value < 0:
                raise ValueError(f"`SQP({name}=...)` must be non-negative.")

    def tolerance_ctol(self, like):
        """`ctol` in `like`'s dtype; `None` means `max(1e-8, 10 eps)` of that dtype:
        1e-8 in float64 (as before), 1.2e-6 in float32, where constraints of order-1
        terms are resolved only to ~1e-7 and a tolerance of 1e-8 is never met."""
        if self.ctol is None:
            return jnp.asarray(max(1e-8, 10 * eps(like)), like.dtype)
        return as_dtype(self.ctol, like)

    def init(self, fn, x, args, constraints=None):
        pt = evaluate(fn, constraints, x, args)
        n, me, mi = x.shape[0], pt.c_eq.shape[0], pt.c_in.shape[0]
        finite = is_finite(pt.f, pt.g, pt.c_eq, pt.J_eq, pt.c_in, pt.J_in)
        zero, i0 = jnp.zeros((), x.dtype), jnp.array(0, jnp.int32)
        violation = violation_max(pt.c_eq, pt.c_in)
        return _SQPState(
            f=pt.f, g=pt.g, c_eq=pt.c_eq, J_eq=pt.J_eq, c_in=pt.c_in, J_in=pt.J_in,
            multipliers=(jnp.zeros(me, x.dtype), jnp.zeros(mi, x.dtype)), w=jnp.zeros(n, x.dtype),
            active_in=jnp.zeros(mi, bool), active_lower=jnp.zeros(n, bool),
            active_upper=jnp.zeros(n, bool),
            B=jnp.eye(n, dtype=x.dtype), num_updates=i0, nu=zero, rho=jnp.array(10.0, x.dtype),
            delta=zero, kkt=jnp.array(jnp.inf, x.dtype),
            violation=violation, flat_steps=i0,
            best_f=pt.f, best_violation=violation, best_kkt=jnp.array(jnp.inf, x.dtype), since=i0,
            restore_next=jnp.array(False), unchanged=jnp.array(False), certified=jnp.array(False),
            damping=jnp.array(1e-3, x.dtype), restoring=jnp.array(False), v2_entry=zero,
            v2_cap=jnp.array(jnp.inf, x.dtype),
            best_v2=violation_l2(pt.c_eq, pt.c_in),
            reason=start_reason(finite),
            alpha=zero, ls_evals=i0, num_fun_evals=jnp.array(1, jnp.int32), num_hvp_evals=i0,
        )

    def step(self, fn, x, state, args, constraints=None):
        lower, upper = _bounds(constraints, x)
        pt = _Point(f=state.f, g=state.g, c_eq=state.c_eq, J_eq=state.J_eq, c_in=state.c_in, J_in=state.J_in)
        use_soc = pt.c_eq.shape[0] + pt.c_in.shape[0] > 0
        ctol, ftol, gtol = self.tolerance_ctol(x), self.tolerance_ftol(x), as_dtype(self.gtol, x)
        n = x.shape[0]
        v0 = violation_l1(pt.c_eq, pt.c_in)
        viol0 = state.violation
        weight = state.rho * (1.0 + state.nu) * v0
        if self.exact_hessian:
            B0 = lagrangian_hessian(fn, constraints, x, args, *state.multipliers)
            num_hvp = state.num_hvp_evals + n
        else:
            B0, num_hvp = state.B, state.num_hvp_evals
        # once the violation is certified locally minimal (see below), delta is pinned
        # to 1: the QP then minimises f's model keeping each constraint's linearised
        # violation from growing, the elastic phase that ends in an infeasible
        # stationary point (Byrd, Curtis & Nocedal 2010)
        infeasible_mode = state.certified
        weight = jnp.where(infeasible_mode, 0.0, weight)  # (delta is fixed: no price)
        qp, p, delta, lam_eq, lam_in, w, act_in, act_lo, act_up = relaxed_qp(
            pt, B0, x, lower, upper, weight, jnp.where(infeasible_mode, 1.0, 0.0))
        # a QP that failed (rounding, degenerate constraints) gives no step: the
        # Hessian restarts from I, as after a failed line search
        qp_ok = (qp.status == QP_SOLVED) & is_finite(qp.d, qp.lam)
        p = jnp.where(qp_ok, p, 0.0)
        delta = jnp.where(qp_ok, delta, 0.0)
        lam_eq, lam_in, w = (jnp.where(qp_ok, v, 0.0) for v in (lam_eq, lam_in, w))

        # penalty parameter (N&W eq. 18.36, sigma = 1, rho = 0.5) and max|lam|
        reduction = v0 - violation_l1(pt.c_eq + pt.J_eq @ p, pt.c_in + pt.J_in @ p)
        gp, pBp = jnp.dot(pt.g, p), jnp.dot(p, B0 @ p)
        has_reduction = reduction > 100 * eps(x) * (1.0 + v0)
        nu_req = jnp.where(has_reduction, (gp + 0.5 * pBp) / (0.5 * jnp.where(has_reduction, reduction, 1.0)), 0.0)
        # max|lam| makes p a descent direction where the linearised constraints hold
        # (delta = 0). In the relaxed QP (delta > 0) the multipliers price the
        # relaxation (they grow with `weight`), so there nu_req alone sets the target
        # and the BFGS update ignores them. Powell's update (1978) lets nu fall back
        # halfway towards its target.
        relaxed = delta > 100 * eps(x)
        lam_max = jnp.maximum(max_norm(lam_eq), max_norm(lam_in))
        target = jnp.where(relaxed, jnp.maximum(nu_req, 0.0), lam_max)
        nu = jnp.minimum(jnp.maximum(1.01 * target, 0.5 * (state.nu + target)), _NU_MAX)
        # (in the infeasible phase the multipliers price keeping the violation; nu
        # does not fall, lest the merit function let the violation grow)
        nu = jnp.where(infeasible_mode, jnp.minimum(jnp.maximum(state.nu, 1.01 * lam_max), _NU_MAX), nu)
        slope = jnp.minimum(gp - nu * reduction, 0.0)  # N&W eq. 18.29 (upper bound if delta > 0)

        # no progress for SQP_PATIENCE steps (the infeasible phase, which only polishes
        # f at a certified point, gets a quarter of them)
        stalled = state.since >= jnp.where(state.certified, SQP_PATIENCE // 4, SQP_PATIENCE)
        # the feasibility step, where the constraints are violated and the QP had to be
        # relaxed (or failed, or the solve stalls): it certifies local infeasibility, or
        # replaces a step that reduces the linearised violation by too little.
        # The restoration phase, once entered, goes on until the squared violation has
        # fallen by a fifth (||c_v|| by a tenth) from where it began: as IPOPT's
        # restoration phase returns only at a point the filter accepts (Wächter &
        # Biegler 2006 §3.3), lest steps along p and feasibility steps undo each other
        v2 = violation_l2(pt.c_eq, pt.c_in)
        in_restoration = state.restoring & (v2 > 0.81 * state.v2_entry) & ~infeasible_mode
        need_f = ((viol0 > ctol) & ((delta > _STEER) | ~qp_ok | stalled | state.restore_next | in_restoration)
                  & ~infeasible_mode)
        p_f, slope_f, certified = feasibility_step(pt, x, lower, upper, ftol, state.damping)
        certified = need_f & certified
        # the reductions of the (squared) violation that the linearisation promises
        # along the feasibility step and along p, weighed by the steering rule
        lin_v2 = lambda s: violation_l2(pt.c_eq + pt.J_eq @ s, pt.c_in + pt.J_in @ s)
        red_f, red_p = v2 - lin_v2(p_f), v2 - lin_v2(p)
        ok_f = slope_f < 0
        # (a step along p that failed, or got less than 1% of its length, while the
        # constraints were violated leaves `restore_next` set: the feasibility step follows,
        # Fletcher & Leyffer's restoration phase: the linearisation that promised the
        # reduction is not to be trusted that far from x)
        restore = need_f & ok_f & ~certified & (~qp_ok | state.restore_next | in_restoration
                                                 | (red_p < _STEER * red_f))

        # the tests at x with the QP's multipliers: a solution is recognised here,
        # without evaluating another trial point
        kkt_here = jnp.where(qp_ok, kkt_residual(pt, lam_eq, lam_in, w, x, lower, upper), state.kkt)
        rel_here = kkt_here * jnp.maximum(max_norm(x), 1.0)
        guard = at_precision_level(rel_here, pt.f, ftol)
        at_floor = viol0 <= jnp.maximum(ctol, violation_floor(pt, x))
        done_here = qp_ok & (kkt_here <= gtol) & (viol0 <= ctol)
        # rounding of the merit function: of f, and of the constraints (times nu)
        noise = merit_noise(pt, x, nu)
        # (of the l1 violation, and of the squared one: each violated c_i times its rounding)
        s_eq, s_in = constraint_scales(pt, x)
        c_noise = eps(x) * (jnp.sum(s_eq) + jnp.sum(s_in))
        c_v, _ = _violated(pt)
        v2_noise = eps(x) * jnp.dot(jnp.abs(c_v), jnp.concatenate([s_eq, s_in]))
        # converged to the attainable precision: feasible to rounding, the last step
        # changed the merit function only within its rounding, the decrease the QP model
        # still predicts is lost in it too, and the relative KKT residual passes the
        # shared guard (`_stopping`: GMW's test U3 on the KKT residual)
        precision_here = qp_ok & at_floor & state.unchanged & (-slope <= 4 * noise) & guard
        stall_end = jnp.where(
            viol0 > ctol,
            jnp.where(at_floor & guard, Reason.PRECISION, Reason.CONSTRAINTS_STALLED),
            stall_reason(rel_here, pt.f, ftol, Reason.HOVERING))
        # the infeasible phase ends INFEASIBLE as a solve ends CONVERGED: its KKT
        # residual at most gtol, at the attainable precision, or stalled
        inf_done = infeasible_mode & qp_ok & (
            (kkt_here <= gtol) | (state.unchanged & (-slope <= 4 * noise) & guard))
        done_here = done_here & ~infeasible_mode
        precision_here = precision_here & ~infeasible_mode
        reason_here = jnp.where(
            done_here, Reason.RUNNING,
            jnp.where(inf_done | (infeasible_mode & stalled), Reason.INFEASIBLE,
                      jnp.where(precision_here, Reason.PRECISION,
                                jnp.where(stalled & ~certified, stall_end, Reason.RUNNING))))
        # (the step that certifies infeasibility moves nowhere: the next one, with
        # delta pinned to 1, starts the infeasible phase)
        stop_here = done_here | inf_done | precision_here | stalled | certified

        # the line search: on the merit function along p, or on the squared violation
        # alone along the feasibility step
        d = jnp.where(restore, p_f, p)
        slope_ls = jnp.where(restore, slope_f, slope)
        noise_ls = jnp.where(restore, v2_noise, noise)

        def merit(q):
            return jnp.where(restore, violation_l2(q.c_eq, q.c_in), q.f + nu * violation_l1(q.c_eq, q.c_in))

        phi0 = merit(pt)
        searchable = (qp_ok | restore) & ~stop_here
        v2_cap = jnp.where(state.restoring & ~restore, jnp.minimum(state.v2_cap, v2), state.v2_cap)

        c1, shrink = as_dtype(self.linesearch.c1, x), as_dtype(self.linesearch.shrink, x)
        # along the feasibility step a quarter of the decrease the slope promises: the
        # Gauss-Newton model misses the constraints' curvature, and a weaker test
        # passes overshooting steps that leave the violation where it was
        c1 = jnp.where(restore, jnp.maximum(c1, 0.25), c1)
        max_ls = self.linesearch.max_steps + int(use_soc)

        def next_alpha(a, phi_a):
            # backtracking by the minimiser of the quadratic through phi0, slope and
            # phi(a), safeguarded to [0.1 a, shrink a] (N&W §3.5)
            curv = phi_a - phi0 - slope_ls * a
            quad = -slope_ls * a * a / (2.0 * jnp.where(curv > 0, curv, 1.0))
            quad = jnp.where((curv > 0) & jnp.isfinite(phi_a), quad, shrink * a)
            return jnp.clip(quad, 0.1 * a, shrink * a)

        def trial(k, a_last, phi_last, first):
            # k = 0: full step; k = 1: second-order correction (when there are
            # constraints); then backtracking along d
            if use_soc:
                soc = lax.cond((k == 1) & ~restore,
                               lambda: second_order_correction(pt, first, act_in, act_lo, act_up),
                               lambda: jnp.zeros_like(x))
                # a negligible correction (no constraint curvature at play) would repeat
                # the full step: backtrack instead
                is_soc = (k == 1) & ~restore & (max_norm(soc) > 100 * eps(x) * max_norm(d))
            else:
                soc, is_soc = jnp.zeros_like(x), jnp.array(False)
            soc = jnp.where(is_soc, soc, 0.0)
            full = (k == 0) | is_soc
            alpha = jnp.where(full, 1.0, next_alpha(a_last, phi_last)).astype(x.dtype)
            x_try = jnp.clip(x + alpha * d + soc, lower, upper)
            q = evaluate(fn, constraints, x_try, args)
            phi = merit(q)
            finite = is_finite(phi, q.g, q.J_eq, q.J_in)
            # a full step whose change is within the merit function's rounding passes:
            # near a solution the model's decrease drowns in it, and a strict test
            # would shrink alpha to nothing. Shortened steps must decrease it: passing
            # them on rounding lets the iterates drift uphill, a rounding error a step.
            allow = jnp.where(full & ~restore, 10 * noise_ls, 0.0)
            ok = finite & (phi <= phi0 + c1 * alpha * slope_ls + allow)
            # where restoration ended is in the filter (Fletcher & Leyffer 2002): a step
            # along p must not end above that squared violation, or the two phases cycle
            ok = ok & (restore | (violation_l2(q.c_eq, q.c_in) <= v2_cap + 10 * v2_noise))
            # the infeasible phase decreases f without letting the violation grow
            # (beyond its rounding): the point stays a minimiser of the violation
            ok = ok & (~infeasible_mode | (violation_l1(q.c_eq, q.c_in) <= v0 + 10 * c_noise))
            phi = jnp.where(finite, phi, jnp.inf)
            a_last = jnp.where(is_soc, a_last, alpha)
            phi_last = jnp.where(is_soc, phi_last, phi)
            return alpha, x_try, q, phi, ok, a_last, phi_last

        def cond(carry):
            k, *_, ok = carry
            return ~ok & (k < max_ls) & searchable

        def body(carry):
            k, _, _, _, _, first, a_last, phi_last, _ = carry
            alpha, x_try, q, phi, ok, a_last, phi_last = trial(k, a_last, phi_last, first)
            first = jax.tree.map(lambda a, b: jnp.where(k == 0, a, b), q, first)
            return k + 1, alpha, x_try, q, phi, first, a_last, phi_last, ok

        i0, one = jnp.array(0, jnp.int32), jnp.ones((), x.dtype)
        start = (i0, jnp.zeros((), x.dtype), x, pt, phi0, pt, one, phi0, jnp.array(False))
        k, alpha, x_try, q, phi, _, _, _, ok = lax.while_loop(cond, body, start)
        ok = ok & searchable

        x_new = jnp.where(ok, x_try, x)
        new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), q, pt)
        # damped BFGS on the Lagrangian gradient with the new multipliers (N&W eq. 18.13),
        # after a step along p; a feasibility step leaves B as it is
        s = x_new - x
        lam_eq_y, lam_in_y = jnp.where(relaxed, 0.0, lam_eq), jnp.where(relaxed, 0.0, lam_in)
        y = _lagrangian_grad(new, lam_eq_y, lam_in_y) - _lagrangian_grad(pt, lam_eq_y, lam_in_y)
        B, updated = damped_bfgs(state.B, s, y, state.num_updates == 0)
        # a step so short that y is rounding (every component within 100 eps of the
        # magnitude of the Lagrangian gradient's terms there) carries no curvature:
        # updating on it lets B's condition grow without bound (past 1e14 in float32
        # within a few steps near a solution)
        terms = lambda q: (jnp.abs(q.g) + jnp.abs(q.J_eq.T) @ jnp.abs(lam_eq_y)
                           + jnp.abs(q.J_in.T) @ jnp.abs(lam_in_y))
        y_noise = 100 * eps(x) * jnp.maximum(terms(new), terms(pt))
        resolved = jnp.any(jnp.abs(y) > y_noise)
        B = jnp.where(resolved, B, state.B)
        updated = updated & resolved
        # a step that left x unchanged to rounding is a failure too: B restarts from I
        # (an enormous B makes the QP step vanish below x's rounding, and the iterates
        # freeze far from a KKT point)
        frozen = ok & (max_norm(s) <= 4 * eps(x) * max_norm(x)) & (state.num_updates > 0) & ~restore
        normal = ok & ~restore & ~frozen
        keep = stop_here | (ok & restore)
        eye = jnp.eye(n, dtype=x.dtype)
        B = jnp.where(normal, B, jnp.where(keep, state.B, eye))  # failure: restart from I
        num_updates = jnp.where(normal, state.num_updates + updated.astype(jnp.int32),
                                jnp.where(keep, state.num_updates, 0))

        kkt = jnp.where(stop_here, kkt_here, kkt_residual(new, lam_eq, lam_in, w, x_new, lower, upper))
        viol = violation_max(new.c_eq, new.c_in)
        # failures: a search that failed from B = I (or along the feasibility step), a
        # QP that failed from B = I, or steps that leave the merit function and x
        # unchanged to rounding
        flat = ok & below_precision(phi - phi0, phi0, x) & (max_norm(s) <= 4 * eps(x) * max_norm(x))
        flat_steps = jnp.where(flat, state.flat_steps + 1, 0)
        failed = ~ok & ~stop_here & ((state.num_updates == 0) | restore)
        lost = (-slope_ls <= 25 * noise_ls) | (max_norm(d) <= 100 * eps(x) * max_norm(x)) | ~qp_ok
        fail_end = jnp.where(
            infeasible_mode, Reason.INFEASIBLE, jnp.where(
            viol0 > ctol,
            jnp.where(at_floor & guard, Reason.PRECISION, Reason.CONSTRAINTS_STALLED),
            jnp.where(lost, stall_reason(rel_here, pt.f, ftol), Reason.LINESEARCH)))
        reason = jnp.where(
            stop_here, reason_here,
            jnp.where(failed | (flat_steps >= 10), fail_end, Reason.RUNNING))

        # progress: the violation fell by 1% (while above ctol), f fell beyond rounding
        # at a violation no worse than the best, or the KKT residual halved
        better_viol = (state.best_violation > ctol) & (viol < 0.99 * state.best_violation)
        better_f = (viol <= jnp.maximum(state.best_violation, ctol)) & (
            new.f < state.best_f - 4 * eps(x) * jnp.abs(state.best_f))
        better_kkt = kkt < 0.5 * state.best_kkt
        v2_new = violation_l2(new.c_eq, new.c_in)
        better_v2 = (viol > ctol) & (v2_new < 0.99 * state.best_v2)
        progress = better_viol | better_f | better_kkt | better_v2 | certified
        best_f = jnp.where(better_viol | better_f, new.f, state.best_f)

        # the relaxed QP's multipliers grow with its weight, and its dual iterations
        # cancel terms of that size: beyond 1 / (1000 eps) (8e3 in float32) its step
        # is rounding, so rho stops there (1e10 in float64)
        rho_max = min(_RHO_MAX, 1 / (1000 * eps(x)))
        rho = jnp.where(delta > 0.1, jnp.minimum(state.rho * 1e3, rho_max), state.rho)
        return x_new, _SQPState(
            f=new.f, g=new.g, c_eq=new.c_eq, J_eq=new.J_eq, c_in=new.c_in, J_in=new.J_in,
            multipliers=(lam_eq, lam_in), w=w,
            active_in=act_in, active_lower=act_lo, active_upper=act_up,
            B=B, num_updates=num_updates, nu=nu, rho=rho, delta=delta,
            kkt=kkt, violation=viol, flat_steps=flat_steps,
            best_f=best_f, best_violation=jnp.minimum(state.best_violation, viol),
            best_kkt=jnp.minimum(state.best_kkt, kkt), since=jnp.where(progress, 0, state.since + 1),
            restore_next=(viol > ctol) & ~restore & ~stop_here & ~infeasible_mode & (~ok | (alpha < 0.01)),
            certified=state.certified | certified,
            restoring=restore & ~stop_here, v2_entry=jnp.where(restore & ~state.restoring, v2, state.v2_entry),
            v2_cap=v2_cap,
            best_v2=jnp.minimum(state.best_v2, v2_new),
            damping=jnp.where(restore & ~stop_here, jnp.clip(jnp.where(ok, jnp.where(alpha >= 1, state.damping / 3,
                                                                                   state.damping / alpha),
                                                                       10 * state.damping), 1e-6, 1e6),
                              state.damping).astype(x.dtype),
            unchanged=~ok | (jnp.abs(phi - phi0) <= 4 * noise_ls),
            reason=keep_reason(state.reason, reason),
            alpha=jnp.where(ok, alpha, 0.0), ls_evals=k,
            num_fun_evals=state.num_fun_evals + k, num_hvp_evals=num_hvp,
        )

    def verdict(self, state):
        feasible = state.violation <= self.tolerance_ctol(state.g)
        return terminate(state.kkt, state.f, state.reason, self.gtol, feasible)

    def optimality_norm(self, state):
        return state.kkt

    def relative_optimality(self, x, state):
        # an iterate that violates the constraints beyond `ctol` is no solution, however
        # small its KKT residual: infinite, so that a stall there is never PRECISION
        rel = state.kkt * jnp.maximum(max_norm(x), 1.0)
        return jnp.where(state.violation <= self.tolerance_ctol(x), rel, jnp.inf)

    def optimality_label(self, state):
        return "kkt"

    def implicit_linear_solver(self):
        return Lineax(lx.LU())

    def implicit_system(self, x, state, fn, args, constraints):
        """`z = (x, lam_eq, lam_in, w)` and the KKT conditions of the final active set
        (see the class docstring)."""
        lam_eq, lam_in = state.multipliers
        act_in, act_lo, act_up = state.active_in, state.active_lower, state.active_upper
        n, me = x.shape[0], lam_eq.shape[0]
        act_b = act_lo | act_up
        z = jnp.concatenate([x, lam_eq, lam_in, state.w])

        def residual(z, fn, args, constraints):
            x, lam_eq = z[:n], z[n:n + me]
            lam_in, w = z[n + me:-n], z[-n:]
            lower, upper = _bounds(constraints, x)
            pt = evaluate(fn, constraints, x, args)
            r_x = _lagrangian_grad(pt, lam_eq, lam_in) - w
            r_in = jnp.where(act_in, pt.c_in, lam_in)
            bound = jnp.where(act_lo, lower, jnp.where(act_up, upper, 0.0))
            r_b = jnp.where(act_b, x - bound, w)
            return jnp.concatenate([r_x, pt.c_eq, r_in, r_b])

        return z, residual

    def implicit_state_tangent(self, t_state, dz):
        n = t_state.g.shape[0]
        me, mi = t_state.multipliers[0].shape[0], t_state.multipliers[1].shape[0]
        mult = (dz[n:n + me], dz[n + me:n + me + mi])
        return eqx.tree_at(lambda s: (s.multipliers, s.w), t_state, (mult, dz[n + me + mi:]))
