"""`Status` codes with their messages, and the `Solution` returned by `minimize`."""

import enum
from typing import Any

import equinox as eqx
import numpy as np
from jaxtyping import Array, Bool, Int, PyTree, Scalar


class Status(enum.IntEnum):
    """Why a solve stopped. `sol.status` holds the integer value as an int32 array."""

    CONVERGED = 0
    MAX_STEPS = 1
    LINESEARCH_FAILED = 2
    STAGNATED = 3
    NONFINITE = 4
    INFEASIBLE = 5


MESSAGES = {
    Status.CONVERGED: (
        "Converged: the gradient norm (with bounds: of the projected gradient; with "
        "constraints: of the KKT residual, violation within `ctol`) is at most `gtol`."
    ),
    Status.MAX_STEPS: "Hit `max_steps` before `gtol` was met; raise `max_steps`.",
    Status.LINESEARCH_FAILED: (
        "The line search failed twice in a row, once from steepest descent: no step "
        "along the search direction satisfied its conditions. The objective may be "
        "non-smooth or its gradient wrong; try another line search or `verbose=True`."
    ),
    Status.STAGNATED: (
        "Stagnated: steps no longer change f or x, so `gtol` lies below the attainable "
        "precision; loosen `gtol` or solve in float64."
    ),
    Status.NONFINITE: (
        "A NaN or inf appeared in x0, f or the gradient where no finite step was "
        "possible; check x0 and the objective."
    ),
    Status.INFEASIBLE: "The constraints could not be satisfied.",
}


class Solution(eqx.Module):
    """The result of `jaxmin.minimize`.

    **Fields:**

    - `x`: the solution, same pytree structure as `x0`.
    - `fun`: `fn(x, *args)`.
    - `grad`: the gradient of `fn` at `x`, shaped like `x0`.
    - `success`: bool scalar array, `status == Status.CONVERGED`.
    - `status`: int32 scalar array holding a `Status` value.
    - `num_steps`: iterations taken.
    - `num_fun_evals`: evaluations of `fn` (a value-and-gradient counts once).
    - `num_hvp_evals`: Hessian-vector products (0 where none are used).
    - `multipliers`: `(eq, ineq)` Lagrange multipliers for constrained solvers, else `None`.
    - `state`: the solver's final state.
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

    @property
    def message(self) -> str:
        """A sentence for `status` (needs a concrete, unbatched status)."""
        status = np.asarray(self.status)
        if status.shape != ():
            return "; ".join(MESSAGES[Status(int(s))] for s in status.ravel())
        return MESSAGES[Status(int(status))]
