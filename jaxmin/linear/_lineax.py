"""Adapter: any lineax solver behind `AbstractLinearSolver`."""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx

from ._base import (
    AbstractLinearSolver,
    LinearResult,
    MatVec,
    Reason,
    check_on_failure,
    check_rhs,
    reason_array,
)


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

    The default `implicit_solver` of `jm.minimize` with `jm.SQP` is
    `Lineax(lx.LU())` (the KKT system is indefinite). Choose a direct solver when `n`
    is small (up to a few thousand) and you want derivatives exact to rounding.

    **Arguments:**

    - `solver` (required): the lineax solver, e.g. `lx.LU()`.
    - `tags` (default `()`): lineax tags for the operator, e.g.
      `lx.positive_semidefinite_tag`, which `lx.Cholesky` and `lx.CG` require, or
      `lx.symmetric_tag`; one tag or several.
    - `on_failure` (default `"iterate"`): what `x` is when lineax reports a failure:
      lineax's value (`"iterate"`; a singular LU gives inf/NaN by itself), or an error
      (`"raise"`, lineax's own `throw=True`, which also guards every derivative's
      solve). (`"nan"`, which `CG` offers, cannot be made transposable around lineax.)

    **Example:**

    ```python
    import lineax as lx

    def smooth_fit(w, lam):
        return jnp.sum(jnp.cosh(w - 1.0)) + lam * jnp.sum(w**2)

    solve = lambda lam: jm.minimize(smooth_fit, jnp.zeros(3), args=(lam,),
                                    implicit_solver=jm.linear.Lineax(lx.LU()))
    dw_dlam = jax.jacrev(lambda lam: solve(lam).x)(0.5)
    ```
    """

    solver: lx.AbstractLinearSolver
    tags: object = eqx.field(default=(), static=True)
    on_failure: str = eqx.field(default="iterate", static=True)
    failure_modes: ClassVar[tuple] = ("iterate", "raise")

    def __check_init__(self):
        check_on_failure(self)

    def solve(self, matvec: MatVec, b: jax.Array) -> LinearResult:
        check_rhs(self, b)
        operator = lx.FunctionLinearOperator(
            matvec, jax.ShapeDtypeStruct(b.shape, b.dtype), self.tags
        )
        # "raise": lineax's own check (it runs in every derivative's solve too)
        sol = lx.linear_solve(operator, b, self.solver, throw=self.on_failure == "raise")
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
