"""Line-search SQP with a damped-BFGS Lagrangian Hessian (Nocedal & Wright, Alg. 18.3).

Notation (N&W ch. 18): `x, f, g`; equality constraints `c_eq(x) = 0` with Jacobian
`J_eq`, inequalities `c_in(x) >= 0` with `J_in`, bounds `lower <= x <= upper`;
multipliers `lam_eq`, `lam_in >= 0` and `w = w_lower - w_upper` for the bounds, with
`g = J_eq^T lam_eq + J_in^T lam_in + w` at a KKT point; Hessian approximation `B`;
step `p`; relaxation variable `delta`; merit penalties `nu` (one per constraint).

One step (`SQP.step`) reads top to bottom: the Hessian, the QP step and the penalty
update (`_sqp_step.qp_and_penalty`: `_sqp_subproblem.relaxed_qp`, `penalty_update`),
the restoration decision (`restoration_plan`), the tests at `x` (`tests_at_x`), the
merit search with its second-order correction (`_sqp_search.search_leg`,
`sqp_search`), the damped BFGS update (`_lagrangian.update_after_step`), and the
verdict (`step_verdict`), progress watch and relaxation weight (`next_rho`). What is
measured at one point lives in `_sqp_point.py`.
"""

from typing import ClassVar, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx

from .._misc import as_dtype, eps, is_finite, max_norm
from .._typing import ScalarLike
from ..linear import Lineax
from ..linesearch import Backtracking
from ._base import AbstractSolver
from ._lagrangian import lagrangian_hessian, lagrangian_product
from ._sqp_point import bounds_of, evaluate, kkt_residual, lagrangian_grad, violation_l2, violation_max
from ._sqp_search import search_leg, sqp_search
from ._sqp_state import _Phase, _SQPState, _Watch, pack_kkt, unpack_kkt
from ._sqp_step import (
    certifiable, certify_tests, hessian_update, next_phase, next_rho, next_watch, no_certificate,
    precision_certificate, qp_and_penalty, restoration_plan, rounding_levels, step_verdict, tests_at_x,
)
from ._sqp_subproblem import QPStep
from ._stopping import keep_reason, start_reason, terminate

# steps in a row with no progress (f, violation or KKT residual) after which SQP ends
# the solve itself as a stall (the driver loop's `PATIENCE` is a last resort)
SQP_PATIENCE = 20


class SQP(AbstractSolver[_SQPState]):
    """Sequential quadratic programming for `eq`, `ineq` and `bounds` (Nocedal & Wright,
    Alg. 18.3: line-search SQP with an l1 merit function and second-order correction).

    The solver for equality and inequality constraints (SciPy's SLSQP and
    trust-constr): `jm.minimize(fn, x0, jm.SQP(), eq=..., ineq=..., bounds=...)`, with
    `eq(x, *args)` an array that must be 0 and `ineq(x, *args)` one that must be
    `>= 0`. It keeps a dense `n x n` Hessian approximation and solves a dense QP each
    step, so it suits `n` up to a few hundred. With bounds alone, `LBFGSB` is cheaper.
    Arguments (defaults, units) are listed at the end; `sol.multipliers = (eq, ineq)`.

    **Example** (Hock & Schittkowski problem 71):

    ```python
    def f(x):
        return x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2]

    def eq(x):      # must be 0
        return jnp.stack([x @ x - 40.0])

    def ineq(x):    # must be >= 0
        return jnp.stack([jnp.prod(x) - 25.0])

    sol = jm.minimize(f, jnp.array([1.0, 5.0, 5.0, 1.0]), jm.SQP(), eq=eq, ineq=ineq,
                      bounds=(1.0, 5.0))
    print(sol.x, sol.fun, sol.multipliers)   # f* = 17.014
    ```

    Each iteration solves a QP in the step `p`, built from the gradient, the
    linearised constraints and a quasi-Newton Lagrangian Hessian `B`; then searches
    along `p` on the merit function `f + sum_i nu_i |c_i|` (`|min(c_i, 0)|` for an
    inequality). The QP solver (its rows equilibrated, each scaled to unit size): for
    `n < SMALL_QP` (32) the dual active-set method of Goldfarb & Idnani (`_qp.py`,
    bounds as rows); above, the primal-dual active-set method
    (`_qp_pdas.py`): bounds as bounds (fixed coordinates eliminated), started from
    the previous step's active set, dense factors only of the free block and of the
    active general rows, with the dual method as its fallback.

    - *Inconsistent linearisations* (e.g. from an infeasible start): the QP is Powell's
      relaxation (as in SLSQP/NLPQL), the constraint values scaled by `1 - delta` with
      `delta in [0, 1]` penalised by `weight delta + beta delta^2 / 2`, `weight =
      rho (violation + sum_i nu_i violation_i)` (see `relaxed_qp`); `rho` grows
      1000-fold whenever `delta > 0.1`, to 1e10 in float64 and `1 / (1000 eps)` (8e3) in float32, where a
      larger weight leaves the QP's step to rounding.
    - *Feasibility restoration* (Fletcher & Leyffer 2002; Wächter & Biegler 2006
      §3.3): where the constraints are violated and the QP had to relax them, a
      Levenberg-Marquardt step on the squared violation (`feasibility_step`) replaces
      `p` when `p` promises under a tenth of its linearised reduction (the steering
      rule of Byrd, Nocedal & Waltz 2008), or after a step along `p` that failed or
      got under 1% of its length; restoration goes on until the squared violation has
      fallen by a fifth, and steps along `p` after it may not end above the squared
      violation it ended at (that point is in the filter).
    - *Penalty*: one weight per constraint, `nu_i = max(1.01 |lam_i|, (nu_i + |lam_i|)
      / 2)` (Powell 1978; SLSQP, Kraft 1988), which makes `p` a descent direction of the
      merit function `f + sum_i nu_i violation_i`; a single weight `max|lam|` would
      price a badly scaled constraint at a well scaled one's multiplier and let its
      curvature cut every step (HS106). When the QP was relaxed (`delta > 0`) no
      weight falls, and each rises to at least `(g.p + p.B p / 2) / ((1 - 0.5)
      (violation - linearised violation))` (N&W eq. 18.36).
    - *Line search*: Armijo backtracking on the merit function with its directional
      derivative `g.p - sum_i nu_i (violation_i - linearised violation_i)` (N&W eq.
      18.29), each step the safeguarded minimiser of a quadratic model (N&W §3.5). When the full
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
      and the relative KKT residual passes the shared guard. That guard is
      first-order and `B` positive definite, so a saddle can pass it: where no
      constraint is active on the free coordinates (`_sqp_step.certifiable`) the stop
      is held and the next step checks the second-order conditions (N&W Thm 12.5-12.6,
      §18.1) by CG on exact Lagrangian Hessian-vector products over the free coordinates
      (`precision_certificate`): the stop stands where the Newton decrement is lost in
      f's rounding; otherwise the Newton or negative-curvature step, cut to the bounds,
      goes through the merit search (Moré & Sorensen 1979), `STAGNATED` where it fails.
    - *Stagnation*: `SQP_PATIENCE` (20) steps in a row in which neither f (at a
      violation no worse), the violation, the squared violation nor the KKT residual
      improved end the solve (well before the driver loop's watch): `PRECISION` or
      `HOVERING` by the shared guard where feasible, else `CONSTRAINTS_STALLED`
      (the violation, above `ctol`, blocks; the message names `ctol`).
    - *Bounds* hold in every QP (`lower - x <= p <= upper - x`), so every trial point
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

    - `linesearch` (default `jm.linesearch.Backtracking()`): a
      `jm.linesearch.Backtracking`, whose `c1`, `shrink` and `max_steps` are used on
      the merit function.
    - `gtol` (default `1e-6`, in the units of the gradient of f): KKT residual
      tolerance.
    - `ctol` (in the units of the constraint functions): constraint violation
      tolerance; `None` (default): `max(1e-8, 10 eps)` of
      the solve's dtype, 1e-8 in float64 and 1.2e-6 in float32.
    - `ftol` (default `None`; relative): the precision tolerance of `_stopping`
      (`None`: `eps / 4`).
    - `exact_hessian` (default `False`): use the exact Hessian of the Lagrangian (at the last
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
        zero, i0, inf = jnp.zeros((), x.dtype), jnp.array(0, jnp.int32), jnp.array(jnp.inf, x.dtype)
        no = jnp.array(False)
        violation = violation_max(pt.c_eq, pt.c_in)
        return _SQPState(
            point=pt,
            qp=QPStep(p=jnp.zeros(n, x.dtype), delta=zero, lam_eq=jnp.zeros(me, x.dtype), lam_in=jnp.zeros(mi, x.dtype),
                      w=jnp.zeros(n, x.dtype), active_in=jnp.zeros(mi, bool), active_lower=jnp.zeros(n, bool),
                      active_upper=jnp.zeros(n, bool), ok=no),
            B=jnp.eye(n, dtype=x.dtype), num_updates=i0, nu=jnp.zeros(me + mi, x.dtype), rho=jnp.array(10.0, x.dtype),
            kkt=inf, violation=violation, flat_steps=i0, unchanged=no, pending=no,
            watch=_Watch(best_f=pt.f, best_violation=violation, best_v2=violation_l2(pt.c_eq, pt.c_in),
                         best_kkt=inf, since=i0),
            phase=_Phase(restore_next=no, restoring=no, v2_entry=zero, v2_cap=inf,
                         damping=jnp.array(1e-3, x.dtype), certified=no),
            reason=start_reason(finite), alpha=zero, ls_evals=i0, num_fun_evals=jnp.array(1, jnp.int32),
            num_hvp_evals=i0,
        )

    def step(self, fn, x, state, args, constraints=None):
        lower, upper = bounds_of(constraints, x)
        pt, phase = state.point, state.phase
        ctol, ftol, gtol = self.tolerance_ctol(x), self.tolerance_ftol(x), as_dtype(self.gtol, x)
        B0, num_hvp = self._hessian(fn, x, state, args, constraints)
        # once the violation is certified locally minimal (`restoration_plan`), delta is
        # pinned to 1: the elastic phase that ends in an infeasible stationary point
        # (Byrd, Curtis & Nocedal 2010)
        infeasible_mode = phase.certified
        qp, nu, slope = qp_and_penalty(pt, B0, x, lower, upper, state, infeasible_mode)
        # no progress for SQP_PATIENCE steps (the infeasible phase, which only polishes
        # f at a certified point, gets a quarter of them)
        stalled = state.watch.since >= jnp.where(infeasible_mode, SQP_PATIENCE // 4, SQP_PATIENCE)
        plan = restoration_plan(pt, x, lower, upper, qp, state, stalled, ctol, ftol)
        noise = rounding_levels(pt, x, nu)
        tests = tests_at_x(pt, x, lower, upper, qp, state, noise, slope, stalled, plan.certified, gtol, ctol, ftol)
        cert, eligible = self._certificate(fn, constraints, args, x, lower, upper, qp, state, ctol)
        tests = certify_tests(tests, cert)

        # the line search: on the merit function along p (or the certificate's
        # direction), or on the squared violation alone along the feasibility step
        leg = search_leg(pt, phase, plan, cert, qp, nu, slope, noise)
        search = sqp_search(self.linesearch, fn, constraints, args, x, pt, leg, lower, upper, qp, noise,
                            infeasible_mode, (qp.ok | leg.restore | cert.stepping) & ~tests.stop,
                            ~leg.restore & ~cert.stepping)
        ok, alpha, phi = search.ok, search.alpha, search.phi

        x_new = jnp.where(ok, search.x, x)
        new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), search.point, pt)
        s = x_new - x
        B, num_updates = hessian_update(state, pt, new, qp, s, x, ok, leg.restore, tests.stop)
        kkt = jnp.where(tests.stop, tests.kkt, kkt_residual(new, qp.lam_eq, qp.lam_in, qp.w, x_new, lower, upper))
        viol = violation_max(new.c_eq, new.c_in)
        reason, pending, flat_steps = step_verdict(tests, state, pt, leg, search, s, qp, cert, eligible, x, ctol, ftol)
        return x_new, _SQPState(
            point=new, qp=qp, B=B, num_updates=num_updates, nu=nu, rho=next_rho(state.rho, qp, x),
            kkt=kkt, violation=viol, flat_steps=flat_steps, pending=pending,
            unchanged=~ok | (jnp.abs(phi - leg.phi0) <= 4 * leg.noise),
            watch=next_watch(state.watch, new, viol, kkt, plan.certified, ctol, x),
            phase=next_phase(phase, plan, tests.stop, ok, alpha, viol, leg.v2, leg.v2_cap, ctol),
            reason=keep_reason(state.reason, reason), alpha=jnp.where(ok, alpha, 0.0), ls_evals=search.k,
            num_fun_evals=state.num_fun_evals + search.k, num_hvp_evals=num_hvp + cert.products,
        )

    def _hessian(self, fn, x, state, args, constraints):
        """The QP's Hessian and the running count of HVPs: damped BFGS's `B`, or the
        exact Lagrangian Hessian at the last multipliers (`n` HVPs)."""
        if self.exact_hessian:
            B = lagrangian_hessian(fn, constraints, x, args, *state.multipliers)
            return B, state.num_hvp_evals + x.shape[0]
        return state.B, state.num_hvp_evals

    def _certificate(self, fn, constraints, args, x, lower, upper, qp, state, ctol):
        """`(certificate, eligible)`: a pending PRECISION stop is certified, or this
        step leaves along the certificate's direction (`precision_certificate`);
        `eligible`: a PRECISION stop met now would be held for the next step. Only
        for an fn and constraints JAX differentiates twice: otherwise nothing is
        compiled."""
        pt = state.point
        product = lagrangian_product(fn, constraints, x, args, qp.lam_eq, qp.lam_in)
        if product is None:
            return no_certificate(x), jnp.array(False)
        eligible = certifiable(pt, x, lower, upper, qp, state.violation, ctol)
        return precision_certificate(product, pt, x, lower, upper, qp, state.pending, eligible), eligible

    def verdict(self, state):
        feasible = state.violation <= self.tolerance_ctol(state.g)
        return terminate(state.kkt, state.f, state.reason, self.gtol, feasible)

    def multipliers(self, state):
        return state.multipliers

    def warm_state(self, fresh, old):
        """A warm start keeps the Lagrangian Hessian approximation, the last QP's
        multipliers and active sets (the next QP starts from them) and the penalty
        parameters; f, the constraints and the convergence measures are fresh."""
        keep = lambda s: (s.qp, s.B, s.num_updates, s.nu, s.rho)  # noqa: E731
        return eqx.tree_at(keep, fresh, keep(old))

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
        """`z = pack_kkt(x, lam_eq, lam_in, w)` and the KKT conditions of the final
        active set (see the class docstring)."""
        lam_eq, lam_in = state.multipliers
        act_in, act_lo, act_up = state.qp.active_in, state.qp.active_lower, state.qp.active_upper
        sizes = x.shape[0], lam_eq.shape[0], lam_in.shape[0]

        def residual(z, fn, args, constraints):
            x, lam_eq, lam_in, w = unpack_kkt(z, *sizes)
            lower, upper = bounds_of(constraints, x)
            pt = evaluate(fn, constraints, x, args)
            r_x = lagrangian_grad(pt, lam_eq, lam_in) - w
            r_in = jnp.where(act_in, pt.c_in, lam_in)
            bound = jnp.where(act_lo, lower, jnp.where(act_up, upper, 0.0))
            r_b = jnp.where(act_lo | act_up, x - bound, w)
            return jnp.concatenate([r_x, pt.c_eq, r_in, r_b])

        return pack_kkt(x, lam_eq, lam_in, state.w), residual

    def implicit_state_tangent(self, t_state, dz):
        sizes = t_state.g.shape[0], t_state.multipliers[0].shape[0], t_state.multipliers[1].shape[0]
        _, d_eq, d_in, d_w = unpack_kkt(dz, *sizes)
        return eqx.tree_at(lambda s: (s.qp.lam_eq, s.qp.lam_in, s.qp.w), t_state, (d_eq, d_in, d_w))
