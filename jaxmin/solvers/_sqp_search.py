"""SQP's line search: Armijo backtracking on a merit function along a direction `d`,
with the second-order correction tried once after a failed full step (Nocedal &
Wright, Alg. 18.3 and §15.6), each shortened step the safeguarded minimiser of a
quadratic model (N&W §3.5).

`merit_search` is the search itself: the merit function and any further acceptance
test are its caller's, `merit(q)` and `admissible(q)` of the `_Point` `q` at a trial
`x`. `SQP.step` chooses them with `search_leg` (the direction, the merit function,
its slope and rounding level) and runs the search with `sqp_search` (SQP's
acceptance tests and parameters: a filter entry, the infeasible phase's bound on
the violation, the second-order correction).
"""

from typing import Callable, NamedTuple, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Bool, Int, Scalar

from .._misc import as_dtype, eps, is_finite, max_norm
from .._typing import Vector
from ._sqp_point import _Point, evaluate, violation_l1, violation_l2, violation_terms
from ._sqp_subproblem import second_order_correction


class MeritSearch(eqx.Module):
    """The line search's outcome (also its loop carry).

    - `k`: trial points evaluated; `alpha`, `x`, `point`, `phi`: the last trial's
      step length, point, evaluations and merit value; `ok`: it was accepted.
    - `first`: the full step's evaluations (the second-order correction needs its
      constraint values); `a_last`, `phi_last`: the last backtracking trial's length
      and merit value (a correction step is not one).
    """

    k: Int[Array, ""]
    alpha: Scalar
    x: Vector
    point: _Point
    phi: Scalar
    first: _Point
    a_last: Scalar
    phi_last: Scalar
    ok: Bool[Array, ""]


def _backtrack(a, phi_a, phi0, slope, shrink):
    """The minimiser of the quadratic through `phi0`, `slope` and `phi(a)`,
    safeguarded to `[0.1 a, shrink a]` (N&W §3.5)."""
    curv = phi_a - phi0 - slope * a
    quad = -slope * a * a / (2.0 * jnp.where(curv > 0, curv, 1.0))
    quad = jnp.where((curv > 0) & jnp.isfinite(phi_a), quad, shrink * a)
    return jnp.clip(quad, 0.1 * a, shrink * a)


def merit_search(
    evaluate: Callable[[Vector], _Point],
    merit: Callable[[_Point], Scalar],
    admissible: Callable[[_Point], Bool[Array, ""]],
    correction: Optional[Callable[[_Point], Vector]],
    x: Vector, d: Vector, pt: _Point, phi0: Scalar, lower: Vector, upper: Vector, *,
    slope: Scalar, allow: Scalar, c1: Scalar, shrink: Scalar, max_steps: int,
    searchable: Bool[Array, ""], correct: Bool[Array, ""],
) -> MeritSearch:
    """Search along `d` from `x` (point `pt`, merit value `phi0`) for a sufficient decrease of `merit`:
    `phi <= phi0 + c1 alpha slope`, a full step passing also within `allow` of it
    (the merit function's rounding: near a solution the model's decrease drowns in it,
    and a strict test would shrink alpha to nothing; shortened steps must decrease it,
    lest the iterates drift uphill a rounding error a step). Trial `k = 0` is the full
    step; `k = 1` the second-order correction `correction(first)` where given and
    `correct` holds, unless negligible; then backtracking. Every trial is
    clipped into the bounds. No trial where `searchable` is false."""

    def trial(k, a_last, phi_last, first):
        if correction is not None:
            soc = lax.cond((k == 1) & correct, lambda: correction(first), lambda: jnp.zeros_like(x))
            # a negligible correction (no constraint curvature at play) would repeat
            # the full step: backtrack instead
            is_soc = (k == 1) & correct & (max_norm(soc) > 100 * eps(x) * max_norm(d))
        else:
            soc, is_soc = jnp.zeros_like(x), jnp.array(False)
        soc = jnp.where(is_soc, soc, 0.0)
        full = (k == 0) | is_soc
        alpha = jnp.where(full, 1.0, _backtrack(a_last, phi_last, phi0, slope, shrink)).astype(x.dtype)
        x_try = jnp.clip(x + alpha * d + soc, lower, upper)
        q = evaluate(x_try)
        phi = merit(q)
        finite = is_finite(phi, q.g, q.J_eq, q.J_in)
        ok = finite & (phi <= phi0 + c1 * alpha * slope + jnp.where(full, allow, 0.0)) & admissible(q)
        phi = jnp.where(finite, phi, jnp.inf)
        a_last = jnp.where(is_soc, a_last, alpha)
        phi_last = jnp.where(is_soc, phi_last, phi)
        return alpha, x_try, q, phi, ok, a_last, phi_last

    def cond(s: MeritSearch):
        return ~s.ok & (s.k < max_steps) & searchable

    def body(s: MeritSearch):
        alpha, x_try, q, phi, ok, a_last, phi_last = trial(s.k, s.a_last, s.phi_last, s.first)
        first = jax.tree.map(lambda a, b: jnp.where(s.k == 0, a, b), q, s.first)
        return MeritSearch(k=s.k + 1, alpha=alpha, x=x_try, point=q, phi=phi, first=first,
                           a_last=a_last, phi_last=phi_last, ok=ok)

    one = jnp.ones((), x.dtype)
    start = MeritSearch(k=jnp.array(0, jnp.int32), alpha=jnp.zeros((), x.dtype), x=x, point=pt, phi=phi0,
                        first=pt, a_last=one, phi_last=phi0, ok=jnp.array(False))
    out = lax.while_loop(cond, body, start)
    return eqx.tree_at(lambda s: s.ok, out, out.ok & searchable)


class SearchLeg(NamedTuple):
    """What one step's line search runs along: the direction `d`, the slope of `merit`
    along it and that function's rounding level `noise`, `merit` and its value `phi0`
    at `x`; `restore`: along the feasibility step; `v2`, `v2_cap`: the squared
    violation at `x` and the filter entry a step along `p` must not end above."""

    d: Vector
    slope: Scalar
    noise: Scalar
    merit: Callable[[_Point], Scalar]
    phi0: Scalar
    v2: Scalar
    v2_cap: Scalar
    restore: Bool[Array, ""]


def search_leg(pt: _Point, phase, plan, cert, qp, nu, slope, noise) -> SearchLeg:
    """The line search of one SQP step: on the squared violation alone along the
    feasibility step (`plan.restore`), else on the merit function `f + sum_i nu_i
    violation_i` along the certificate's direction (`cert.stepping`) or the QP's
    step `p` (slope `slope`). Entering the merit search from restoration caps the
    squared violation at the one restoration ended at."""
    restore = plan.restore
    d = jnp.where(restore, plan.p, jnp.where(cert.stepping, cert.d, qp.p))
    slope_ls = jnp.where(restore, plan.slope, jnp.where(cert.stepping, cert.slope, slope))
    noise_ls = jnp.where(restore, noise.v2, noise.merit)
    merit = lambda q: jnp.where(restore, violation_l2(q.c_eq, q.c_in),  # noqa: E731
                                q.f + jnp.dot(nu, violation_terms(q.c_eq, q.c_in)))
    phi0 = merit(pt)
    v2 = violation_l2(pt.c_eq, pt.c_in)
    v2_cap = jnp.where(phase.restoring & ~restore, jnp.minimum(phase.v2_cap, v2), phase.v2_cap)
    return SearchLeg(d=d, slope=slope_ls, noise=noise_ls, merit=merit, phi0=phi0, v2=v2, v2_cap=v2_cap,
                     restore=restore)


def sqp_search(linesearch, fn, constraints, args, x, pt: _Point, leg: SearchLeg, lower, upper, qp, noise,
               infeasible_mode, searchable, correct) -> MeritSearch:
    """`merit_search` along `leg` with SQP's acceptance tests and the parameters of
    `linesearch` (a `Backtracking`)."""
    v0 = violation_l1(pt.c_eq, pt.c_in)
    restore = leg.restore
    c1, shrink = as_dtype(linesearch.c1, x), as_dtype(linesearch.shrink, x)
    # along the feasibility step a quarter of the decrease the slope promises: the
    # Gauss-Newton model misses the constraints' curvature, and a weaker test
    # passes overshooting steps that leave the violation where it was
    c1 = jnp.where(restore, jnp.maximum(c1, 0.25), c1)
    use_soc = pt.c_eq.shape[0] + pt.c_in.shape[0] > 0

    def admissible(q):
        # where restoration ended is in the filter (Fletcher & Leyffer 2002): a step
        # along p must not end above that squared violation, or the two phases cycle
        below_cap = restore | (violation_l2(q.c_eq, q.c_in) <= leg.v2_cap + 10 * noise.v2)
        # the infeasible phase decreases f without letting the violation grow
        # (beyond its rounding): the point stays a minimiser of the violation
        return below_cap & (~infeasible_mode | (violation_l1(q.c_eq, q.c_in) <= v0 + 10 * noise.l1))

    correction = (lambda first: second_order_correction(pt, first, qp)) if use_soc else None
    return merit_search(
        lambda z: evaluate(fn, constraints, z, args), leg.merit, admissible, correction, x, leg.d, pt, leg.phi0,
        lower, upper, slope=leg.slope, allow=jnp.where(restore, 0.0, 10 * leg.noise), c1=c1, shrink=shrink,
        max_steps=linesearch.max_steps + int(use_soc), searchable=searchable, correct=correct)
