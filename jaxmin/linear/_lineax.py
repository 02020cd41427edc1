"""Adapter: any lineax solver behind `AbstractLinearSolver`."""

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx

from ._base import AbstractLinearSolver, LinearResult, MatVec, Reason, check_rhs, reason_array


class Lineax(AbstractLinearSolver):
    """Any lineax solver (`lx.LU()`, `lx.Cholesky()`, `lx.GMRES(...)`, `lx.CG(...)`,
    ...) applied to `lx.FunctionLinearOperator(matvec, ...)`.

    Use it for systems the CG family cannot take, such as indefinite KKT systems
    (LU or GMRES). Direct solvers materialise `A` with `n` matvecs. The solve is
    `lx.linear_solve(..., throw=False)`, which is transposable, so `jax.grad` and
    `jax.jvp` through `solve(...).x` work as for `CG`.

    lineax's result maps to `Reason`: successful to `CONVERGED`, max steps reached to
    `MAX_STEPS`, anything else (singular, breakdown, stagnation, non-finite input) to
    `FAILED`. `num_steps` is lineax's `stats["num_steps"]` where the solver reports
    one (the iterative ones), else 0.

    **Arguments:**

    - `solver`: the lineax solver.
    - `tags`: lineax tags for the operator, e.g. `lx.positive_semidefinite_tag`, which
      `lx.Cholesky` and `lx.CG` require, or `lx.symmetric_tag`; one tag or several.
    """

    solver: lx.AbstractLinearSolver
    tags: object = eqx.field(default=(), static=True)

    def solve(self, matvec: MatVec, b: jax.Array) -> LinearResult:
        check_rhs(self, b)
        operator = lx.FunctionLinearOperator(
            matvec, jax.ShapeDtypeStruct(b.shape, b.dtype), self.tags
        )
        sol = lx.linear_solve(operator, b, self.solver, throw=False)
        reason = jnp.where(
            sol.result == lx.RESULTS.successful,
            reason_array(Reason.CONVERGED),
            jnp.where(
                sol.result == lx.RESULTS.max_steps_reached,
                reason_array(Reason.MAX_STEPS),
                reason_array(Reason.FAILED),
            ),
        )
        num_steps = jnp.asarray(sol.stats.get("num_steps", 0)).astype(jnp.int32)
        return LinearResult(x=sol.value, num_steps=num_steps, reason=reason)
