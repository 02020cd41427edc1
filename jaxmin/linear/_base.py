"""The linear-solver interface: `AbstractLinearSolver`, `LinearResult` and `Reason`."""

import abc
import enum
from typing import Callable

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Int

from .._typing import Vector

MatVec = Callable[[Vector], Vector]


class Reason(enum.IntEnum):
    """Why a linear solve stopped. `LinearResult.reason` holds the value as int32."""

    CONVERGED = 0  # the residual test was met
    MAX_STEPS = 1  # the iteration cap was hit first
    NEGATIVE_CURVATURE = 2  # `p^T A p <= eps |p|^2` along a CG direction (TruncatedCG only)
    FAILED = 3  # breakdown, a lineax failure, or a non-finite value


class LinearResult(eqx.Module):
    """What a linear solve returns.

    - `x`: the solution, or the iterate at exit (see each solver for which one).
    - `num_steps`: iterations; for the CG family, the matrix-vector products made in
      the loop.
    - `reason`: int32 scalar array holding a `Reason` value.
    """

    x: Vector
    num_steps: Int[Array, ""]
    reason: Int[Array, ""]


class AbstractLinearSolver(eqx.Module):
    """Solves `A x = b` for a linear operator given as a function: the base class of
    `CG`, `TruncatedCG` and `Lineax`, for writing your own.

    Subclass it and implement `solve`. Every solver is jit- and vmap-safe, runs in
    `b`'s dtype, and reports failure through `reason` rather than raising.
    """

    @abc.abstractmethod
    def solve(self, matvec: MatVec, b: Vector) -> LinearResult:
        """Solve `A x = b` for the linear operator `matvec(v) = A v` on flat vectors `b`."""

    def with_solver_preconditioner(self, precondition) -> "AbstractLinearSolver":
        """For solver authors: this solver as the implicit rule uses it, given the
        minimiser's own preconditioner `precondition` (`v -> M^-1 v`, or `None`; see
        `AbstractSolver.implicit_preconditioner`). Itself, unless it asked for that
        preconditioner (`CG(preconditioner="solver")`)."""
        del precondition
        return self


def check_rhs(solver: AbstractLinearSolver, b: Vector) -> None:
    """Raise at trace time unless `b` is a flat floating vector."""
    if jnp.ndim(b) != 1 or not jnp.issubdtype(jnp.result_type(b), jnp.floating):
        name = type(solver).__name__
        raise ValueError(f"`{name}.solve` needs a 1-D floating `b`, got {jnp.shape(b)} "
                         f"{jnp.result_type(b)}.")


def reason_array(reason: Reason) -> Int[Array, ""]:
    """`reason` as the int32 scalar that `LinearResult.reason` holds."""
    return jnp.array(reason, jnp.int32)


def check_on_failure(solver) -> None:
    """Raise unless `solver.on_failure` is one of its `failure_modes`."""
    if solver.on_failure not in solver.failure_modes:
        raise ValueError(f"`{type(solver).__name__}(on_failure=...)` must be one of "
                         f"{solver.failure_modes}; got {solver.on_failure!r}.")


def apply_on_failure(on_failure: str, x: Vector, reason) -> Vector:
    """`x` as `on_failure` says where `reason` is not `CONVERGED`: unchanged
    (`"iterate"`), all NaN (`"nan"`), or an error at run time (`"raise"`)."""
    failed = reason != Reason.CONVERGED
    if on_failure == "nan":
        return jnp.where(failed, jnp.nan, x)
    if on_failure == "raise":
        return eqx.error_if(x, failed, "a linear solve did not converge (its `max_steps` was "
                            "reached, or it broke down); in the derivatives of `jm.minimize`, "
                            "pass another `implicit_solver=`")
    return x
