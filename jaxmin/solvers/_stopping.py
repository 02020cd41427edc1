"""How a step ended and when a solve ends: the one set of stopping rules every solver
uses (unconstrained, bounded, constrained, first-order).

A solve ends with `Status.CONVERGED` when one of three tests passes, the first two of
them checked after every step (Gill, Murray & Wright 1981, *Practical Optimization*
§8.2.3, tests U1-U3; Dennis & Schnabel 1983 §7.2; the `factr` test of L-BFGS-B, Zhu,
Byrd, Lu & Nocedal 1997; the "acceptable level" idea of IPOPT, Wächter & Biegler 2006):

- `GTOL`: the optimality measure (max|g|; with bounds the projected gradient; with
  constraints the KKT residual) is at most `gtol`.
- `FTOL`: an accepted step decreased f by at most `ftol * max(|f_old|, |f|)` (SciPy's
  L-BFGS-B test, without its floor of 1, which would stop a small f early) *and* the
  relative gradient passes the guard below. The guard keeps
  a slow stretch of a long valley from passing for a solution.
- `PRECISION`: the solve can no longer decrease f beyond its rounding (the line search
  fails from the safest direction, or `MAX_FLAT_STEPS` steps in a row leave f
  unchanged), the decrease the solver's model still predicts is lost in f's rounding,
  and the relative gradient passes the guard: f is as accurate as the dtype allows,
  so `gtol` lies below what it resolves.

The guard is first-order: where the Hessian is nearly singular or indefinite a gradient
at its rounding noise does not make a minimum. A solver with second-order information
(`NewtonCG`) certifies an `FTOL` or `PRECISION` stop with one accurate Newton step: the
Newton decrement (Boyd & Vandenberghe 2004 §9.5.1) must be lost in f's rounding
(`lost_in_rounding`) and CG must meet no negative curvature; where the step it then
takes fails with the decrease still predicted above the rounding, `end_step` (given
`model_exact`) ends the solve `STAGNATED`, never `PRECISION`.

The guard is Dennis & Schnabel's relative gradient (§7.2) against GMW's U3 tolerance:
`max_i |g_i| max(|x_i|, 1) <= ftol^(1/3) max(|f|, 1)` (the KKT residual in place of
`g` with constraints). `ftol` defaults to `eps / 4` of the solve's dtype ("f unchanged
to its last bit"), so `ftol^(1/3)` is 3.1e-3 in float32 and 3.8e-6 in float64. A solve
whose f stops decreasing while the guard fails is a failure, `STAGNATED` (or
`LINESEARCH_FAILED`, where the decrease the model predicted stood well above f's
rounding: a wrong gradient or a kink, not precision).

How the peers decide, for comparison: MINPACK's `lmder` stops on relative tests of the
decrease of f (`ftol`), of the step (`xtol`) and of the gradient's angle (`gtol`), and
reports "ftol/xtol too small, no further reduction possible" as a separate outcome;
L-BFGS-B declares convergence on its `factr` test alone; IPOPT accepts a looser
"acceptable" tolerance after 15 consecutive acceptable iterates; Optimistix's Cauchy
termination declares success when both the step and the change of f are within
`atol + rtol * |.|`. The decrease tests alone call slow progress convergence (as measured
for issue 12 on the MGH table in float32: SciPy L-BFGS-B 9 false successes, Optimistix 11), hence
the relative-gradient guard here.

The driver loop (`jaxmin._loop`) adds what needs the whole history: a solve that makes
no progress for `PATIENCE` steps ends as a stall (judged by the same guard), and one
whose f falls to -inf or whose iterates grow without bound ends `DIVERGED`.
"""

from typing import Optional

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Scalar

from .._misc import as_dtype, below_precision, eps, max_norm
from .._solution import REASON_STATUS, Reason, Status
from .._typing import ScalarLike, Vector

# Steps in a row that may leave f unchanged (to rounding) while x still moves: beyond
# this f carries no information and the solve has stalled.
MAX_FLAT_STEPS = 10
# Steps without progress (neither f nor the optimality measure improving) after which
# the driver loop ends a solve as a stall.
PATIENCE = 300


def status_of(reason: Int[Array, ""]) -> Int[Array, ""]:
    """The `Status` a `Reason` belongs to (`CONVERGED` while running)."""
    table = [Status.CONVERGED] * len(Reason)
    for r, s in REASON_STATUS.items():
        table[int(r)] = s
    return jnp.asarray(table, jnp.int32)[reason]


def default_ftol(ftol: Optional[ScalarLike], like: Array) -> Array:
    """`ftol` in `like`'s dtype; `None` means `eps / 4` of that dtype."""
    if ftol is None:
        return jnp.asarray(eps(like) / 4, like.dtype)
    return as_dtype(ftol, like)


def relative_optimality(residual: Array, x: Vector) -> Scalar:
    """Dennis & Schnabel's relative gradient `max_i |r_i| max(|x_i|, 1)` for a residual
    shaped like `x` (a scalar residual is scaled by `max(max|x|, 1)`)."""
    return max_norm(residual * jnp.maximum(jnp.abs(x), 1.0))


def at_precision_level(relative: Scalar, f: Scalar, ftol: Array) -> Bool[Array, ""]:
    """The guard of the `FTOL` and `PRECISION` tests:
    `relative <= ftol^(1/3) max(|f|, 1)`."""
    return relative <= jnp.cbrt(ftol) * jnp.maximum(jnp.abs(f), 1.0)


def lost_in_rounding(predicted: Scalar, f: Scalar, like: Array) -> Bool[Array, ""]:
    """The decrease a model predicts is lost in f's rounding: `|predicted| / 25 <=
    4 eps max(|f|, 1)` (on f's scale, at least 1: GMW's `1 + |f|`; a margin of 25,
    since a decrease must stand out of f's noise to pass a sufficient-decrease test)."""
    return jnp.abs(predicted) / 25 <= 4 * eps(like) * jnp.maximum(jnp.abs(f), 1.0)


def start_reason(finite: Bool[Array, ""]) -> Int[Array, ""]:
    """`RUNNING`, or `NONFINITE_START` where x0, f or g is NaN/inf."""
    return jnp.where(finite, Reason.RUNNING, Reason.NONFINITE_START).astype(jnp.int32)


def stall_reason(relative: Scalar, f: Scalar, ftol: Array, otherwise=Reason.STALLED) -> Int[Array, ""]:
    """A solve that can no longer decrease f: `PRECISION` (converged) where the
    relative optimality passes the guard, else `otherwise`."""
    return jnp.where(at_precision_level(relative, f, ftol), Reason.PRECISION, otherwise).astype(jnp.int32)


class StepEnd(eqx.Module):
    """How one step ended.

    - `failed`: the step found no decrease, or changed neither f nor x beyond
      rounding: the solver retries from a safer direction, or stops.
    - `flat_steps`: consecutive accepted steps that left f unchanged to rounding.
    - `reason`: `RUNNING`, or why the solve ends after this step.
    """

    failed: Bool[Array, ""]
    flat_steps: Int[Array, ""]
    reason: Int[Array, ""]


def end_step(
    *,
    x: Vector,
    f: Scalar,
    f_new: Scalar,
    accepted: Bool[Array, ""],
    moved: Scalar,
    predicted: Scalar,
    at_precision: Bool[Array, ""],
    retry_possible: Bool[Array, ""],
    trial_f: Scalar,
    optimality: Scalar,
    flat_steps: Int[Array, ""],
    ftol: Array,
    model_exact: Bool[Array, ""] = False,
) -> StepEnd:
    """Decide how a line-search step ended and whether the solve ends.

    `x`, `f`: the iterate before the step; `f_new`, `optimality`: f and the optimality
    measure at the iterate kept after it (the old one where the step was rejected);
    `moved`: max|x_new - x|; `predicted`: the decrease the solver's model expected
    from the full step (`inf` where it has none); `at_precision`: the full step is
    within ~100 rounding errors of x; `retry_possible`: a failure can be retried from
    a safer direction (e.g. L-BFGS with memory retries along steepest descent);
    `trial_f`: f at the search's last trial (NaN/inf there tells a failure why);
    `optimality`: the relative optimality (`relative_optimality`) at the kept iterate;
    `model_exact`: `predicted` comes from an accurately solved second-order model (the
    Newton decrement), so a failed search whose prediction stands above f's rounding is
    a failure even where the relative gradient passes the guard (see `lost_in_rounding`).
    """
    f_flat = below_precision(f_new - f, f, x)
    x_flat = moved <= 4 * eps(x) * max_norm(x)
    failed = ~accepted | (f_flat & x_flat)
    flat_steps = jnp.where(accepted & f_flat, flat_steps + 1, 0)
    stop = (failed & (~retry_possible | at_precision)) | (flat_steps >= MAX_FLAT_STEPS)

    # a failure whose predicted decrease was lost in f's rounding is precision, not the search
    lost = lost_in_rounding(predicted, f, x) | at_precision | accepted
    # (a search that fails where the relative gradient is at the precision level is
    # rounding at a solution too, not a kink or a wrong gradient -- unless an accurate
    # second-order model predicts a decrease above the rounding: then the gradient's
    # size hides a flat direction the dtype cannot follow, and the solve has stalled)
    guarded = jnp.where(model_exact, jnp.where(at_precision_level(optimality, f_new, ftol),
                                               Reason.STALLED, Reason.LINESEARCH),
                        stall_reason(optimality, f_new, ftol, Reason.LINESEARCH))
    searched = jnp.where(jnp.isfinite(trial_f), guarded, Reason.NONFINITE_STEP)
    fail = jnp.where(
        trial_f == -jnp.inf, Reason.UNBOUNDED,
        jnp.where(lost, stall_reason(optimality, f_new, ftol), searched))
    small_decrease = accepted & (f - f_new <= ftol * jnp.maximum(jnp.abs(f), jnp.abs(f_new)))
    ftol_met = small_decrease & at_precision_level(optimality, f_new, ftol)
    reason = jnp.where(stop, fail, jnp.where(ftol_met, Reason.FTOL, Reason.RUNNING))
    return StepEnd(failed=failed, flat_steps=flat_steps, reason=reason.astype(jnp.int32))


def certifies(pending: Int[Array, ""], predicted: Scalar, f: Scalar, x: Vector) -> Bool[Array, ""]:
    """Whether this step certifies the first-order stop `pending` (the `FTOL` or
    `PRECISION` reason the last step met; `RUNNING`: none) of a solver that certifies
    such stops with an accurate Newton step (see the module docstring): the decrease
    its model predicts from `(x, f)`, `predicted`, is lost in f's rounding. A certified
    stop takes no step (`_search.search_step`'s `certified`)."""
    return (pending != Reason.RUNNING) & lost_in_rounding(predicted, f, x)


def certified_end(certified: Bool[Array, ""], pending: Int[Array, ""],
                  step_reason: Int[Array, ""]) -> tuple[Int[Array, ""], Int[Array, ""]]:
    """`(reason, pending)` after a step of a solver that certifies first-order stops:
    a `certified` stop (`certifies`) ends the solve with `pending`; a first-order stop
    this step meets becomes the new `pending` instead of ending the solve."""
    first_order = (step_reason == Reason.FTOL) | (step_reason == Reason.PRECISION)
    reason = jnp.where(certified, pending, jnp.where(first_order, Reason.RUNNING, step_reason))
    new_pending = jnp.where(first_order & ~certified, step_reason, Reason.RUNNING)
    return reason.astype(jnp.int32), new_pending.astype(jnp.int32)


def keep_reason(old: Int[Array, ""], new: Int[Array, ""]) -> Int[Array, ""]:
    """The first reason that ended the solve wins (a stopped solve's state does not
    change, but a hand-driven loop may step on)."""
    return jnp.where(old == Reason.RUNNING, new, old).astype(jnp.int32)


def terminate(optimality: Scalar, f: Scalar, reason: Int[Array, ""], gtol: ScalarLike,
              extra_ok: Bool[Array, ""] = True) -> tuple[Bool[Array, ""], Int[Array, ""], Int[Array, ""]]:
    """`(done, status, reason)` for every solver: done when the optimality measure is
    at most `gtol` (f finite, and `extra_ok`, e.g. the violation within `ctol`), or when
    a step has recorded a reason to stop."""
    gtol_met = (optimality <= as_dtype(gtol, optimality)) & jnp.isfinite(f) & extra_ok
    running = reason == Reason.RUNNING
    reason = jnp.where(running & gtol_met, Reason.GTOL, reason).astype(jnp.int32)
    return gtol_met | ~running, status_of(reason), reason
