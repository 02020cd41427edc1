"""`Status` and `Reason` codes with their messages, and the `Solution` returned by `minimize`."""

import collections
import enum
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, Bool, Int, PyTree, Scalar


class Status(enum.IntEnum):
    """Why a solve stopped: the verdict in `sol.status` (an int32 array holding one
    of these values; compare with `sol.status == jm.Status.CONVERGED`, which also
    works on batches). `sol.reason` (a `Reason`) names the test behind it and
    `sol.message` says it in a sentence with the figures that decided it.

    - `CONVERGED` (0): a convergence test passed: the optimality measure is at most
      `gtol`, or f stopped decreasing with the gradient at the level the dtype
      resolves. `sol.success` is true exactly then. Nothing to do.
    - `MAX_STEPS` (1): `max_steps` was reached while the solve was still making
      progress. Raise `max_steps`, or resume exactly where it stopped with
      `minimize(fn, sol.x, solver, args, warm_start=sol)`.
    - `LINESEARCH_FAILED` (2): no step along a descent direction decreased f although
      the decrease the model predicts stands well above f's rounding (taken as
      `eps |f|`): the objective is non-smooth there, or its gradient is wrong, or f is
      computed with cancellation (large terms summing to a much smaller f, as in an
      ill-conditioned quadratic `x.Ax/2 - b.x`), so that its rounding is far larger.
      Check the gradient (`jm.testing.check_derivatives` compares it with finite
      differences), or try another line search; for cancellation, reformulate f (a
      sum of squares of residuals) or rescale x.
    - `STAGNATED` (3): f stopped decreasing (to its rounding) while the gradient is
      still far from small: the problem is badly scaled or too ill-conditioned for
      the dtype, or the iterates hover (a fixed step too long to settle, SQP's KKT
      residual not improving). Rescale x to order 1, use float64, try
      `jm.NewtonCG`, or use a decaying learning rate.
    - `NONFINITE` (4): NaN/inf in x0, f or the gradient where no finite step was
      possible. Check x0 and the objective's domain (bounds keep iterates inside it).
    - `INFEASIBLE` (5): the constraints could not be satisfied: the iterate is a
      local minimiser of the constraint violation with the violation above `ctol`.
      Check that the constraints are consistent, or start elsewhere.
    - `DIVERGED` (6): f fell without bound (to -inf, or the iterates grew without
      bound), or a fixed-step method's iterates blew up. Check the objective's sign
      and add bounds, or lower the learning rate.

    New members may be added; existing values keep their numbers.
    """

    CONVERGED = 0
    MAX_STEPS = 1
    LINESEARCH_FAILED = 2
    STAGNATED = 3
    NONFINITE = 4
    INFEASIBLE = 5
    DIVERGED = 6


class Reason(enum.IntEnum):
    """Which test ended the solve: `sol.reason` holds one of these values (int32);
    `Solution.message` explains it. Each reason belongs to one `Status`:

    - `RUNNING` (0): the value while a solve goes on.
    - `GTOL` (1, `CONVERGED`): the optimality measure (max|g|; projected gradient
      with bounds; KKT residual with constraints) is at most `gtol`.
    - `FTOL` (2, `CONVERGED`): a step decreased f by at most `ftol` (relative) and
      the relative gradient is small.
    - `PRECISION` (3, `CONVERGED`): no step decreases f beyond its rounding and the
      relative gradient is at the level the dtype resolves: `gtol` lies below it.
    - `MAX_STEPS` (4, `MAX_STEPS`): still making progress at the cap.
    - `LINESEARCH` (5, `LINESEARCH_FAILED`): no decrease found although one is
      predicted well above rounding.
    - `STALLED` (6, `STAGNATED`): f stopped decreasing while the gradient is far from
      small, or while an accurate Newton model still predicts a decrease above f's
      rounding (`NewtonCG`).
    - `HOVERING` (7, `STAGNATED`): no progress over many steps (fixed steps, SQP).
    - `CONSTRAINTS_STALLED` (8, `STAGNATED`): the violation, above `ctol`, stopped
      improving.
    - `NONFINITE_START` (9, `NONFINITE`): NaN/inf at x0.
    - `NONFINITE_STEP` (10, `NONFINITE`): only NaN/inf along the search direction.
    - `INFEASIBLE` (11, `INFEASIBLE`): the violation is locally minimal above `ctol`.
    - `UNBOUNDED` (12, `DIVERGED`): f fell to -inf or the iterates ran off.
    - `LEARNING_RATE` (13, `DIVERGED`): a fixed step blew up.
    """

    RUNNING = 0
    GTOL = 1  # CONVERGED: the optimality measure is at most `gtol`
    FTOL = 2  # CONVERGED: f's relative decrease at most `ftol`, optimality small
    PRECISION = 3  # CONVERGED: no further decrease possible, optimality at precision level
    MAX_STEPS = 4  # MAX_STEPS: still making progress at the cap
    LINESEARCH = 5  # LINESEARCH_FAILED
    STALLED = 6  # STAGNATED: f stopped decreasing, optimality far from small
    HOVERING = 7  # STAGNATED: no progress over many steps (fixed steps, SQP)
    CONSTRAINTS_STALLED = 8  # STAGNATED: the violation, above `ctol`, stopped improving
    NONFINITE_START = 9  # NONFINITE: NaN/inf at x0
    NONFINITE_STEP = 10  # NONFINITE: only NaN/inf along the search direction
    INFEASIBLE = 11  # INFEASIBLE
    UNBOUNDED = 12  # DIVERGED: f -> -inf or |x| -> inf
    LEARNING_RATE = 13  # DIVERGED: a fixed step blew up


REASON_STATUS = {
    Reason.GTOL: Status.CONVERGED,
    Reason.FTOL: Status.CONVERGED,
    Reason.PRECISION: Status.CONVERGED,
    Reason.MAX_STEPS: Status.MAX_STEPS,
    Reason.LINESEARCH: Status.LINESEARCH_FAILED,
    Reason.STALLED: Status.STAGNATED,
    Reason.HOVERING: Status.STAGNATED,
    Reason.CONSTRAINTS_STALLED: Status.STAGNATED,
    Reason.NONFINITE_START: Status.NONFINITE,
    Reason.NONFINITE_STEP: Status.NONFINITE,
    Reason.INFEASIBLE: Status.INFEASIBLE,
    Reason.UNBOUNDED: Status.DIVERGED,
    Reason.LEARNING_RATE: Status.DIVERGED,
}

# One sentence per reason; `{...}` fields are filled from the concrete Solution.
_MEASURE = "optimality"
REASON_MESSAGES = {
    Reason.RUNNING: "The solve has not ended.",
    Reason.GTOL: "Converged: the optimality measure ({measure} = {opt:.3g}) is at most `gtol`.",
    Reason.FTOL: (
        "Converged: the last step decreased f by at most `ftol` (relative) and the "
        "relative optimality max_i |g_i| max(|x_i|, 1) is at most ftol^(1/3) max(|f|, 1) "
        "({measure} = {opt:.3g})."
    ),
    Reason.PRECISION: (
        "Converged to the attainable precision: no step decreases f beyond its rounding "
        "(nor does the model predict one) and the relative optimality is at most "
        "ftol^(1/3) max(|f|, 1) ({measure} = {opt:.3g}): f is as accurate as {dtype} "
        "allows, and `gtol` lies below what it resolves."
    ),
    Reason.MAX_STEPS: (
        "Hit `max_steps` while f (or the optimality measure) was still decreasing; "
        "raise `max_steps`."
    ),
    Reason.LINESEARCH: (
        "The line search failed, also from the safest direction: no step decreased f "
        "although the decrease the model predicts stands well above f's rounding (eps |f|). "
        "The objective may be non-smooth there or its gradient wrong (check the gradient, "
        "try another line search, or use `verbose=True`), or f may be computed with "
        "cancellation (large terms summing to a much smaller f, as in an ill-conditioned "
        "quadratic), which rounds far above eps |f|: then reformulate f (e.g. as a sum of "
        "squares) or rescale x."
    ),
    Reason.STALLED: (
        "Stagnated: f stopped decreasing (to its rounding) while the optimality measure "
        "({measure} = {opt:.3g} at f = {f:.3g}) is far above its precision level, or "
        "while the Newton model (`NewtonCG`) still predicts a decrease well above f's "
        "rounding along a direction too flat for the dtype to follow. The "
        "problem is badly scaled or too ill-conditioned{for_dtype}: rescale x (and f) to "
        "order 1, or try `jm.NewtonCG`."
    ),
    Reason.HOVERING: (
        "Stagnated: neither f nor the optimality measure ({measure} = {opt:.3g}) improved "
        "over the last steps: the iterates hover. For a fixed step, use a decaying "
        "learning-rate schedule or a line search; for SQP, the KKT residual is at the "
        "level of its rounding: loosen `gtol`{or_float64}."
    ),
    Reason.CONSTRAINTS_STALLED: (
        "Stagnated: the constraint violation ({violation:.3g}) stopped decreasing above "
        "`ctol`: `ctol` lies below what {dtype} resolves for these constraints (loosen "
        "`ctol`), or the constraints are degenerate (dependent gradients) at this point."
    ),
    Reason.NONFINITE_START: "f or its gradient is NaN/inf at x0 (or x0 itself is): check x0 and the objective.",
    Reason.NONFINITE_STEP: (
        "Only NaN/inf values lay along the search direction: the objective is undefined "
        "or overflows near x; check its domain (or add bounds) and the scale of x."
    ),
    Reason.INFEASIBLE: (
        "Infeasible: the constraints could not be satisfied: their violation "
        "({violation:.3g}) is locally minimal and above `ctol`, so they are inconsistent near x."
    ),
    Reason.UNBOUNDED: (
        "Diverged: f fell without bound (f = {f:.3g}) or the iterates grew without bound: "
        "the objective looks unbounded below; check its sign, or add bounds or constraints."
    ),
    Reason.LEARNING_RATE: (
        "Diverged: the fixed step made f or the gradient overflow to NaN/inf (the iterate "
        "before it is returned): the learning rate is too large for this problem; lower "
        "`learning_rate` (or use a schedule or a line search)."
    ),
}

# the message of each status when only the status is known (batched or legacy use)
MESSAGES = {
    Status.CONVERGED: "Converged: a convergence test passed (`sol.reason` says which).",
    Status.MAX_STEPS: REASON_MESSAGES[Reason.MAX_STEPS],
    Status.LINESEARCH_FAILED: REASON_MESSAGES[Reason.LINESEARCH],
    Status.STAGNATED: (
        "Stagnated: f stopped decreasing while the optimality measure is far from small "
        "(see `sol.message` for a single solve)."
    ),
    Status.NONFINITE: "A NaN or inf appeared in x0, f or the gradient where no finite step was possible.",
    Status.INFEASIBLE: "Infeasible: the constraints could not be satisfied.",
    Status.DIVERGED: (
        "Diverged: f fell without bound, or a fixed step blew up (lower the learning rate)."
    ),
}


class Solution(eqx.Module):
    """The result of `jaxmin.minimize`.

    **Fields:**

    - `x`: the solution, same pytree structure as `x0`.
    - `fun`: `fn(x, *args)`.
    - `grad`: the gradient of `fn` at `x`, shaped like `x0`.
    - `success`: bool scalar array, `status == Status.CONVERGED`.
    - `status`: int32 scalar array holding a `Status` value.
    - `reason`: int32 scalar array holding a `Reason` value: which test ended the solve.
    - `optimality`: the measure `gtol` bounds at `x` (max|g|; with bounds the projected
      gradient; with constraints the KKT residual).
    - `num_steps`: iterations taken.
    - `num_fun_evals`: evaluations of `fn` (a value-and-gradient counts once).
    - `num_hvp_evals`: Hessian-vector products (0 where none are used).
    - `multipliers`: `(eq, ineq)` Lagrange multipliers for constrained solvers, else `None`.
    - `state`: the solver's final state.
    - `aux`: with `minimize(..., has_aux=True)`, the auxiliary output of `fn` at `x`;
      else `None`.
    - `progress`: the driver's record of the solve's progress (best f and optimality,
      steps since they improved), which `minimize(..., warm_start=sol)` continues.
    """

    x: PyTree
    fun: Scalar
    grad: PyTree
    success: Bool[Array, ""]
    status: Int[Array, ""]
    num_steps: Int[Array, ""]
    num_fun_evals: Int[Array, ""]
    num_hvp_evals: Int[Array, ""]
    multipliers: Any
    state: Any
    reason: Int[Array, ""] = None
    optimality: Scalar = None
    aux: Any = None
    progress: Any = None

    @property
    def message(self) -> str:
        """A sentence saying which test ended the solve, with the figures that decided
        it (needs concrete values; for a batch, one sentence per member's status)."""
        status = np.asarray(self.status)
        if status.shape != ():
            return "; ".join(MESSAGES[Status(int(s))] for s in status.ravel())
        if self.reason is None or np.asarray(self.reason).shape != ():
            return MESSAGES[Status(int(status))]
        return describe(Reason(int(self.reason)), self)

    def __repr__(self) -> str:
        """A summary of concrete values: the verdict, counts, `fun`, `x` and the message;
        for a batch, how many members succeeded and the statuses by count (traced values
        print as equinox's structural repr)."""
        try:
            status = np.asarray(self.status)
        except Exception:  # a tracer (inside jit or vmap): no values to show
            return eqx.tree_pformat(self)
        if status.shape != ():
            return _batch_summary(self, status)
        x = jax.tree.map(lambda v: _Shown(np.array2string(np.asarray(v), threshold=8, precision=6)),
                         self.x)
        name = Status(int(status)).name
        reason = "" if self.reason is None else Reason(int(self.reason)).name
        return (
            f"Solution({name}" + ("" if reason in ("", name) else f" ({reason})")
            + f", {int(self.num_steps)} steps, {int(self.num_fun_evals)} evaluations of fn"
            + (f", {int(self.num_hvp_evals)} Hessian-vector products" if int(self.num_hvp_evals) else "")
            + f"\n  fun = {float(np.asarray(self.fun)):.9g}"
            + ("" if self.optimality is None else f", optimality = {float(np.asarray(self.optimality)):.3g}")
            + f"\n  x = {x}"
            + f"\n  message: {self.message})"
        )

    __str__ = __repr__


class _Shown(str):
    """A string that reprs as itself (arrays inside a printed pytree)."""

    def __repr__(self) -> str:
        return str(self)


def _batch_summary(sol: "Solution", status) -> str:
    counts = collections.Counter(Status(int(s)).name for s in status.ravel())
    steps = np.asarray(sol.num_steps).ravel()
    return (
        f"Solution(batch of {status.size}: {int(np.sum(status == Status.CONVERGED))} succeeded; "
        + ", ".join(f"{name} {n}" for name, n in counts.most_common())
        + f"; steps min {steps.min()}, median {int(np.median(steps))}, max {steps.max()})"
    )


def describe(reason: Reason, sol: "Solution") -> str:
    """`REASON_MESSAGES[reason]` filled with the figures of a concrete `sol`."""
    state = sol.state
    dtype = np.asarray(sol.fun).dtype
    opt = sol.optimality
    values = dict(
        measure=_MEASURE,
        opt=float(np.asarray(opt)) if opt is not None else float("nan"),
        f=float(np.asarray(sol.fun)),
        violation=float(np.asarray(getattr(state, "violation", np.nan))),
        dtype=dtype.name,
        for_dtype=f" for {dtype.name}",
        or_float64=", or solve in float64" if dtype == np.float32 else "",
    )
    template = REASON_MESSAGES[reason]
    if reason == Reason.STALLED and hasattr(state, "violation"):
        template = _CONSTRAINED_STALL
    return template.format(**values)


# STALLED for a constrained solver (SQP): no Newton model; degenerate constraints are a
# likelier cause than scaling (HS13: dependent active gradients, no multipliers)
_CONSTRAINED_STALL = (
    "Stagnated: the merit function stopped decreasing (to its rounding) while the KKT "
    "residual ({measure} = {opt:.3g} at f = {f:.3g}) is far above its precision level. "
    "Either the active constraints' gradients are (nearly) dependent at x, so that no "
    "multipliers exist there (check for redundant or degenerate constraints, e.g. "
    "`g(x) >= 0` written as `g(x)**2 >= 0`, and reformulate), or the problem is badly "
    "scaled{for_dtype} (rescale x, f and the constraints to order 1)."
)


def make_solution(solver, x, state, num_steps, status, reason, unravel=lambda v: v, aux=None,
                  progress=None) -> Solution:
    """The `Solution` of a solve that ended at the flat `x` with `state` (`unravel`:
    the flat vector back to `x0`'s pytree)."""
    return Solution(
        x=unravel(x), fun=state.f, grad=unravel(state.g), success=status == Status.CONVERGED,
        status=status, num_steps=num_steps, num_fun_evals=state.num_fun_evals,
        num_hvp_evals=state.num_hvp_evals, multipliers=solver.multipliers(state),
        state=state, reason=reason, optimality=solver.optimality_norm(state), aux=aux,
        progress=progress,
    )
