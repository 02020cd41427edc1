"""The pieces of one SQP step (`SQP.step` calls them in this order): the QP step and
the penalty update, the restoration decision, the rounding levels and the tests at
`x`, then, after the merit search, the Hessian update, the step's verdict, the
progress watch, the restoration phase and the relaxation weight.

Notation as in `_sqp.py` (Nocedal & Wright ch. 18).
"""

import equinox as eqx
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Bool, Int, Scalar

from .._misc import below_precision, eps, max_norm
from .._solution import Reason
from .._typing import Vector
from ._lagrangian import update_after_step
from ._sqp_point import (
    _Point, constraint_scales, kkt_residual, lagrangian_grad, merit_noise, violated, violation_floor,
    violation_l1, violation_l2, violation_terms,
)
from ._sqp_state import _Phase, _SQPState, _Watch
from ._sqp_subproblem import QPStep, feasibility_step, relaxed_qp
from ._stopping import at_precision_level, lost_in_rounding, stall_reason
from ._trust_cg import accurate_newton_direction

_NU_MAX = 1e12  # cap of the merit penalty
_RHO_MAX = 1e10  # cap of the relaxation weight
# the fraction of the best linearised violation reduction a step must achieve before
# the feasibility step replaces it (Byrd, Nocedal & Waltz 2008, "steering" rule)
_STEER = 0.1
# steps in a row that leave the merit function and x unchanged to rounding: a failure
_MAX_FLAT_STEPS = 10


def qp_and_penalty(pt: _Point, B, x, lower, upper, state: _SQPState, infeasible_mode):
    """`(qp, nu, slope)`: the relaxed QP's step (`relaxed_qp`), its relaxation priced
    at `rho` times the violation's worth in the merit function (each constraint's
    violation at its penalty, plus the violation itself), then the penalties and the
    merit function's slope along `p` (`penalty_update`). In the infeasible phase
    (`infeasible_mode`) delta is pinned to 1 at no price: the QP then minimises f's
    model keeping each constraint's linearised violation from growing."""
    v0 = violation_l1(pt.c_eq, pt.c_in)
    worth = v0 + jnp.dot(state.nu, violation_terms(pt.c_eq, pt.c_in))
    weight = jnp.where(infeasible_mode, 0.0, state.rho * worth)
    qp = relaxed_qp(pt, B, x, lower, upper, weight, jnp.where(infeasible_mode, 1.0, 0.0), state.qp)
    nu, slope = penalty_update(pt, B, qp, state.nu, v0, infeasible_mode, x)
    return qp, nu, slope


def penalty_update(pt: _Point, B, qp: QPStep, nu_old, v0, infeasible_mode, x):
    """The merit penalties `nu` (one per constraint, equalities first) and the merit
    function's directional derivative along `p`, `g.p - sum_i nu_i (violation_i -
    linearised violation_i)` (N&W eq. 18.29, weighted; an upper bound where
    `delta > 0`).

    Each constraint has its own weight, as in Powell (1978) and SLSQP (Kraft 1988,
    §2.3): `nu_i = max(1.01 t_i, (nu_i + t_i) / 2)` for the target `t_i = |lam_i|`,
    which makes `p` a descent direction where the linearised constraints hold
    (`delta = 0`), falling back halfway towards it. One weight `max|lam|` for all
    would price a badly scaled constraint (terms of 1e6, multiplier 1e-2) at the
    multiplier of a well scaled one (1e4): its curvature then dominates the merit
    function and the search cuts every step to nothing (HS106). In the relaxed QP
    (`delta > 0`) the multipliers price the relaxation (they grow with its weight), so
    there no `nu_i` falls, and each rises to at least the common requirement of N&W
    eq. 18.36 (sigma = 1, rho = 0.5): were they to fall, the relaxation's weight,
    built from them, would fall too, and the QP would relax ever more cheaply (HS106
    stalled so at a violation of 8e-4). In the infeasible phase the multipliers price
    keeping the violation, and no `nu_i` falls either, lest the merit function let
    the violation grow.
    """
    p = qp.p
    reduction = violation_terms(pt.c_eq, pt.c_in) - violation_terms(pt.c_eq + pt.J_eq @ p, pt.c_in + pt.J_in @ p)
    total = jnp.sum(reduction)
    gp, pBp = jnp.dot(pt.g, p), jnp.dot(p, B @ p)
    has_reduction = total > 100 * eps(x) * (1.0 + v0)
    nu_req = jnp.where(has_reduction, (gp + 0.5 * pBp) / (0.5 * jnp.where(has_reduction, total, 1.0)), 0.0)
    relaxed = qp.delta > 100 * eps(x)
    lam = jnp.abs(jnp.concatenate([qp.lam_eq, qp.lam_in]))
    powell = jnp.maximum(1.01 * lam, 0.5 * (nu_old + lam))
    floor = jnp.where(relaxed, jnp.maximum(nu_req, 0.0), lam)
    nu = jnp.where(relaxed | infeasible_mode, jnp.maximum(nu_old, 1.01 * floor), powell)
    nu = jnp.minimum(nu, _NU_MAX)
    return nu, jnp.minimum(gp - jnp.dot(nu, reduction), 0.0)


class _Plan(eqx.Module):
    """The feasibility step and whether it replaces `p` (`restoration_plan`)."""

    p: Vector
    slope: Scalar  # of the squared violation along `p`
    certified: Bool[Array, ""]  # x is a stationary point of the violation above ctol
    restore: Bool[Array, ""]  # this step is a feasibility step


def restoration_plan(pt: _Point, x, lower, upper, qp: QPStep, state: _SQPState, stalled, ctol, ftol) -> _Plan:
    """The feasibility step, where the constraints are violated and the QP had to be
    relaxed (or failed, or the solve stalls): it certifies local infeasibility, or
    replaces a step `p` that reduces the linearised squared violation by under a tenth
    of what it promises (the steering rule), or follows a step along `p` that failed
    or got less than 1% of its length (`restore_next`: the linearisation that promised
    the reduction is not to be trusted that far from x). The restoration phase, once
    entered, goes on until the squared violation has fallen by a fifth from where it
    began, as IPOPT's restoration phase returns only at a point the filter accepts
    (Wächter & Biegler 2006 §3.3), lest steps along p and feasibility steps undo each
    other."""
    phase, infeasible_mode = state.phase, state.phase.certified
    v2 = violation_l2(pt.c_eq, pt.c_in)
    in_restoration = phase.restoring & (v2 > 0.81 * phase.v2_entry) & ~infeasible_mode
    need = ((state.violation > ctol)
            & ((qp.delta > _STEER) | ~qp.ok | stalled | phase.restore_next | in_restoration)
            & ~infeasible_mode)
    # (its n x n solve only where it is needed; with bounds alone, never: the QP keeps
    # every iterate inside them, so nothing is violated, and the step is not compiled)
    no_step = lambda: (jnp.zeros_like(x), jnp.zeros((), x.dtype), jnp.array(False))
    if pt.c_eq.shape[0] + pt.c_in.shape[0] == 0:
        p_f, slope_f, certified = no_step()
    else:
        p_f, slope_f, certified = lax.cond(
            need, lambda: feasibility_step(pt, x, lower, upper, ftol, phase.damping), no_step)
    certified = need & certified
    lin_v2 = lambda s: violation_l2(pt.c_eq + pt.J_eq @ s, pt.c_in + pt.J_in @ s)
    red_f, red_p = v2 - lin_v2(p_f), v2 - lin_v2(qp.p)
    restore = need & (slope_f < 0) & ~certified & (~qp.ok | phase.restore_next | in_restoration
                                                    | (red_p < _STEER * red_f))
    return _Plan(p=p_f, slope=slope_f, certified=certified, restore=restore)


class _Noise(eqx.Module):
    """Rounding levels at `x`: of the merit function, of the l1 violation, and of
    the squared violation (each violated `c_i` times its rounding)."""

    merit: Scalar
    l1: Scalar
    v2: Scalar


def rounding_levels(pt: _Point, x, nu) -> _Noise:
    s_eq, s_in = constraint_scales(pt, x)
    c_v, _ = violated(pt)
    return _Noise(merit=merit_noise(pt, x, nu), l1=eps(x) * (jnp.sum(s_eq) + jnp.sum(s_in)),
                  v2=eps(x) * jnp.dot(jnp.abs(c_v), jnp.concatenate([s_eq, s_in])))


def _blocked_or(infeasible, at_floor_guard, otherwise):
    """The end of a solve whose violation is above `ctol`: `PRECISION` at the
    constraints' rounding floor, else `CONSTRAINTS_STALLED` (the message names
    `ctol`); `otherwise` where feasible."""
    return jnp.where(infeasible, jnp.where(at_floor_guard, Reason.PRECISION, Reason.CONSTRAINTS_STALLED),
                     otherwise)


class _Tests(eqx.Module):
    """The tests at `x` with the new QP's multipliers (`tests_at_x`)."""

    kkt: Scalar
    rel: Scalar  # kkt relative to x's scale
    floor_guard: Bool[Array, ""]  # feasible to rounding and at the shared precision guard
    reason: Int[Array, ""]
    stop: Bool[Array, ""]


def tests_at_x(pt: _Point, x, lower, upper, qp: QPStep, state: _SQPState, noise: _Noise, slope, stalled,
               certified, gtol, ctol, ftol) -> _Tests:
    """The tests at `x` with the new QP's multipliers: a solution is recognised here,
    without evaluating another trial point. Converged: KKT residual `<= gtol` and
    violation `<= ctol`. At the attainable precision: feasible to rounding, the last
    step changed the merit function only within its rounding, the decrease the QP
    model still predicts is lost in it too, and the relative KKT residual passes the
    shared guard (`_stopping`: GMW's test U3 on the KKT residual). The infeasible
    phase ends `INFEASIBLE` as a solve ends `CONVERGED`: its KKT residual at most
    `gtol`, at the attainable precision, or stalled. (The step that certifies
    infeasibility moves nowhere: the next one, with delta pinned to 1, starts the
    infeasible phase.)"""
    infeasible_mode, viol0 = state.phase.certified, state.violation
    kkt = jnp.where(qp.ok, kkt_residual(pt, qp.lam_eq, qp.lam_in, qp.w, x, lower, upper), state.kkt)
    rel = kkt * jnp.maximum(max_norm(x), 1.0)
    guard = at_precision_level(rel, pt.f, ftol)
    at_floor = viol0 <= jnp.maximum(ctol, violation_floor(pt, x))
    settled = state.unchanged & (-slope <= 4 * noise.merit) & guard
    done = qp.ok & (kkt <= gtol) & (viol0 <= ctol) & ~infeasible_mode
    precision = qp.ok & at_floor & settled & ~infeasible_mode
    inf_done = infeasible_mode & qp.ok & ((kkt <= gtol) | settled)
    stall_end = _blocked_or(viol0 > ctol, at_floor & guard, stall_reason(rel, pt.f, ftol, Reason.HOVERING))
    reason = jnp.where(
        done, Reason.RUNNING,
        jnp.where(inf_done | (infeasible_mode & stalled), Reason.INFEASIBLE,
                  jnp.where(precision, Reason.PRECISION,
                            jnp.where(stalled & ~certified, stall_end, Reason.RUNNING))))
    stop = done | inf_done | precision | stalled | certified
    return _Tests(kkt=kkt, rel=rel, floor_guard=at_floor & guard, reason=reason, stop=stop)


def hessian_update(state: _SQPState, pt: _Point, new: _Point, qp: QPStep, s, x, ok, restore, stop):
    """Damped BFGS on the Lagrangian gradient with the new multipliers (N&W eq.
    18.13), after a step along `p` (`_lagrangian.update_after_step`); the relaxed
    QP's multipliers price the relaxation, so there `y` is that of f alone."""
    relaxed = qp.delta > 100 * eps(x)
    lam_eq, lam_in = jnp.where(relaxed, 0.0, qp.lam_eq), jnp.where(relaxed, 0.0, qp.lam_in)
    y = lagrangian_grad(new, lam_eq, lam_in) - lagrangian_grad(pt, lam_eq, lam_in)
    terms = lambda q: jnp.abs(q.g) + jnp.abs(q.J_eq.T) @ jnp.abs(lam_eq) + jnp.abs(q.J_in.T) @ jnp.abs(lam_in)
    y_noise = 100 * eps(x) * jnp.maximum(terms(new), terms(pt))
    frozen = ok & (max_norm(s) <= 4 * eps(x) * max_norm(x)) & (state.num_updates > 0) & ~restore
    return update_after_step(state.B, state.num_updates, s, y, y_noise, ok & ~restore, frozen,
                             stop | (ok & restore))


def step_reason(tests: _Tests, state: _SQPState, pt: _Point, ok, restore, lost, flat_steps, ctol, ftol):
    """Why this step ends the solve (`RUNNING`: it does not): a test at `x`, or a
    failure: a search that failed from `B = I` (or along the feasibility step), or
    `_MAX_FLAT_STEPS` steps leaving the merit function and x unchanged to rounding;
    `lost` where the model's decrease is below rounding (a stall, not a failed
    search)."""
    failed = ~ok & ~tests.stop & ((state.num_updates == 0) | restore)
    fail_end = jnp.where(
        state.phase.certified, Reason.INFEASIBLE,
        _blocked_or(state.violation > ctol, tests.floor_guard,
                    jnp.where(lost, stall_reason(tests.rel, pt.f, ftol), Reason.LINESEARCH)))
    return jnp.where(tests.stop, tests.reason,
                     jnp.where(failed | (flat_steps >= _MAX_FLAT_STEPS), fail_end, Reason.RUNNING))


def step_verdict(tests: _Tests, state: _SQPState, pt: _Point, leg, search, s, qp: QPStep, cert, eligible, x,
                 ctol, ftol):
    """`(reason, pending, flat_steps)` after the search along `leg` (`_sqp_search.SearchLeg`):
    the step's `step_reason`, a PRECISION stop held for the certificate or certified
    (`certified_reason`), and the count of steps in a row that left the merit
    function and x unchanged to rounding."""
    ok = search.ok
    flat = ok & below_precision(search.phi - leg.phi0, leg.phi0, x) & (max_norm(s) <= 4 * eps(x) * max_norm(x))
    flat_steps = jnp.where(flat, state.flat_steps + 1, 0)
    lost = (-leg.slope <= 25 * leg.noise) | (max_norm(leg.d) <= 100 * eps(x) * max_norm(x)) | ~qp.ok
    reason = step_reason(tests, state, pt, ok, leg.restore, lost, flat_steps, ctol, ftol)
    reason, pending = certified_reason(reason, cert, ok, eligible)
    return reason, pending, flat_steps


def next_watch(watch: _Watch, new: _Point, viol, kkt, certified, ctol, x) -> _Watch:
    """Progress: the violation fell by 1% (while above ctol), f fell beyond rounding
    at a violation no worse than the best, the squared violation fell by 1%, or the
    KKT residual halved."""
    better_viol = (watch.best_violation > ctol) & (viol < 0.99 * watch.best_violation)
    better_f = (viol <= jnp.maximum(watch.best_violation, ctol)) & (
        new.f < watch.best_f - 4 * eps(x) * jnp.abs(watch.best_f))
    better_kkt = kkt < 0.5 * watch.best_kkt
    v2 = violation_l2(new.c_eq, new.c_in)
    better_v2 = (viol > ctol) & (v2 < 0.99 * watch.best_v2)
    progress = better_viol | better_f | better_kkt | better_v2 | certified
    return _Watch(best_f=jnp.where(better_viol | better_f, new.f, watch.best_f),
                  best_violation=jnp.minimum(watch.best_violation, viol), best_v2=jnp.minimum(watch.best_v2, v2),
                  best_kkt=jnp.minimum(watch.best_kkt, kkt), since=jnp.where(progress, 0, watch.since + 1))


def next_phase(phase: _Phase, plan: _Plan, stop, ok, alpha, viol, v2, v2_cap, ctol) -> _Phase:
    """Restoration after this step: a step along `p` that failed or got under 1% of
    its length while the constraints are violated makes the next a feasibility step;
    the Levenberg-Marquardt parameter adapts as Marquardt's does (Nielsen 1999): a
    third after a full step, divided by the accepted step length otherwise, tenfold
    after a failure."""
    restore = plan.restore
    going = restore & ~stop
    damping = jnp.clip(jnp.where(ok, jnp.where(alpha >= 1, phase.damping / 3, phase.damping / alpha),
                                 10 * phase.damping), 1e-6, 1e6)
    return _Phase(
        restore_next=(viol > ctol) & ~restore & ~stop & ~phase.certified & (~ok | (alpha < 0.01)),
        restoring=going, v2_entry=jnp.where(restore & ~phase.restoring, v2, phase.v2_entry), v2_cap=v2_cap,
        damping=jnp.where(going, damping, phase.damping).astype(phase.damping.dtype),
        certified=phase.certified | plan.certified,
    )


class _Certificate(eqx.Module):
    """The second-order certificate of a pending `PRECISION` stop (`precision_certificate`).

    - `certified`: the stop stands: the solve ends `PRECISION` here, taking no step.
    - `stepping`: it does not: this step goes along `d` (slope `slope` of f) instead.
    - `products`: the Hessian-vector products it cost.
    """

    certified: Bool[Array, ""]
    stepping: Bool[Array, ""]
    d: Vector
    slope: Scalar
    products: Int[Array, ""]


def no_certificate(x) -> _Certificate:
    """No stop pending (or none can be certified): nothing changes."""
    no = jnp.array(False)
    return _Certificate(certified=no, stepping=no, d=jnp.zeros_like(x), slope=jnp.zeros((), x.dtype),
                        products=jnp.array(0, jnp.int32))


def _free(x, lower, upper, qp: QPStep):
    """The free coordinates: strictly inside their bounds and not in the QP's active set."""
    return (x > lower) & (x < upper) & ~qp.active_lower & ~qp.active_upper


def certifiable(pt: _Point, x, lower, upper, qp: QPStep, violation, ctol):
    """Where a `PRECISION` stop is certified before it ends the solve: feasible to
    `ctol`, and no general constraint active on the free coordinates (each equality and
    active inequality with a gradient that vanishes there: none at all, a padding row
    `0 = 0`, or one on coordinates fixed at their bounds), so the free coordinates span
    the null space of the active constraints' gradients and the second-order conditions
    (N&W Thm 12.5-12.6) concern the Lagrangian's Hessian on them alone."""
    free = _free(x, lower, upper, qp)
    rows = jnp.concatenate([pt.J_eq, jnp.where(qp.active_in[:, None], pt.J_in, 0.0)])
    tangent = jnp.all(jnp.where(free[None, :], rows, 0.0) == 0)
    return qp.ok & tangent & (violation <= ctol)


def precision_certificate(product, pt: _Point, x, lower, upper, qp: QPStep, pending, eligible) -> _Certificate:
    """The accurate Newton step on the free coordinates (strictly inside their
    bounds, not in the QP's active set), at a pending `PRECISION` stop: `H p = -g`
    solved by CG on exact Hessian-vector products `product` of the Lagrangian
    (`_trust_cg.accurate_newton_direction`). The stop stands where the model's
    decrease (the Newton decrement, or the decrease along a negative-curvature
    direction) is lost in f's rounding (`_stopping.lost_in_rounding`), or where a
    general constraint has become active (`eligible` false, see `certifiable`: no
    certificate); else the step, cut to the bounds, replaces the QP's (Moré & Sorensen
    1979: a saddle is left along negative curvature; Royer & Wright 2018)."""
    free = _free(x, lower, upper, qp)
    examine = pending & eligible
    g = jnp.where(free, lagrangian_grad(pt, qp.lam_eq, qp.lam_in), 0.0)
    matvec = lambda v: jnp.where(free, product(jnp.where(free, v, 0.0)), 0.0)  # noqa: E731
    q, products, predicted = accurate_newton_direction(matvec, g, examine)
    certified = pending & (~eligible | lost_in_rounding(predicted, pt.f, x))
    room = jnp.where(q > 0, (upper - x) / jnp.where(q > 0, q, 1.0),
                     jnp.where(q < 0, (lower - x) / jnp.where(q < 0, q, 1.0), jnp.inf))
    d = jnp.minimum(1.0, jnp.min(room)) * q
    return _Certificate(certified=certified, stepping=examine & ~certified, d=d, slope=jnp.dot(g, d),
                        products=products)


def certify_tests(tests: _Tests, cert: _Certificate) -> _Tests:
    """The tests at `x` on a step that examines a pending stop: they end the solve
    (`PRECISION`) where it is certified, and are set aside where it is not."""
    examined = cert.certified | cert.stepping
    stop = jnp.where(examined, cert.certified, tests.stop)
    reason = jnp.where(examined, jnp.where(cert.certified, Reason.PRECISION, Reason.RUNNING), tests.reason)
    return eqx.tree_at(lambda t: (t.stop, t.reason), tests, (stop, reason.astype(tests.reason.dtype)))


def certified_reason(reason, cert: _Certificate, ok, eligible):
    """`(reason, pending)` after the step: a `PRECISION` stop where `eligible` becomes
    pending (the next step certifies it) instead of ending the solve; a step along
    the certificate's direction that fails ends the solve `STALLED`: its decrease,
    predicted above f's rounding by an exact second-order model, is one the dtype
    cannot follow (as `_stopping.end_step` with `model_exact`)."""
    reason = jnp.where(cert.stepping & ~ok, Reason.STALLED, reason)
    defer = (reason == Reason.PRECISION) & eligible & ~cert.certified
    return jnp.where(defer, Reason.RUNNING, reason).astype(jnp.int32), defer


def next_rho(rho, qp: QPStep, x):
    """The relaxation weight after this step: 1000-fold where the QP relaxed the
    constraints by more than a tenth. The relaxed QP's multipliers grow with the
    weight, and its dual iterations cancel terms of that size: beyond `1 / (1000
    eps)` (8e3 in float32) its step is rounding, so `rho` stops there (1e10 in
    float64)."""
    rho_max = min(_RHO_MAX, 1 / (1000 * eps(x)))
    return jnp.where(qp.delta > 0.1, jnp.minimum(rho * 1e3, rho_max), rho)
