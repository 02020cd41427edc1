"""SQP's line search: Armijo backtracking on a merit function along a direction `d`,
with the second-order correction tried once after a failed full step (Nocedal &
Wright, Alg. 18.3 and §15.6), each shortened step the safeguarded minimiser of a
quadratic model (N&W §3.5).

The merit function and any further acceptance test (a filter entry, the infeasible
phase's bound on the violation) are the caller's: `merit(q)` and `admissible(q)` of
the `_Point` `q` at a trial `x`.
"""

from typing import Callable, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Bool, Int, Scalar

from .._misc import eps, is_finite, max_norm
from .._typing import Vector
from ._sqp_point import _Point


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
