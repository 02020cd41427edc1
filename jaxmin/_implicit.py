"""Derivatives of a solution by the implicit function theorem (one `custom_jvp`).

At a solution the solver's optimality conditions hold, `r(z*(theta), theta) = 0`, where
`z` is `x` (the gradient is the residual, for unconstrained solvers) or `x` with
multipliers (the KKT conditions of the active set, for constrained ones). So
`dz*/dtheta = -(dr/dz)^{-1} dr/dtheta`: one linear solve, never differentiating through
the loop (`AbstractSolver.implicit_system` says what `z` and `r` are).
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp

from ._constraints import Constraints
from ._loop import run_solver
from ._solution import Status
from ._typing import Vector


def solve_implicit(solver, fn, x0: Vector, args: tuple, max_steps, monitor, linear_solver,
                   constraints=None, throw=False, earlier=None, problem=None):
    """`run_solver(...)` whose `x` (and the state's `f`) differentiate implicitly with
    respect to every floating array in `args`, every array `fn` (or a constraint
    function) closes over, and the bounds.

    The derivative with respect to `x0` is zero. Derivatives of a solve that did not
    converge are those of its optimality conditions at a point where they do not hold:
    not derivatives of a solution. With `throw=True` computing them raises (also under
    `jit`), as the solve itself does.
    """
    # closed-over arrays become explicit leaves of `fn`, so they are differentiable
    # inputs rather than leaked tracers
    fn = eqx.filter_closure_convert(fn, x0, *args)
    if constraints is not None:
        convert = lambda c: None if c is None else eqx.filter_closure_convert(c, x0, *args)
        constraints = Constraints(
            eq=convert(constraints.eq), ineq=convert(constraints.ineq),
            lower=constraints.lower, upper=constraints.upper,
        )
    # x0 and the solvers' hyperparameters are not differentiated: cut their tangents
    # (array leaves only: a solver may hold functions, such as a schedule)
    # (nor is a warm start's state: the solution does not depend on it)
    x0, solver, linear_solver, earlier = jax.tree.map(
        lambda leaf: jax.lax.stop_gradient(leaf) if eqx.is_inexact_array(leaf) else leaf,
        (x0, solver, linear_solver, earlier),
    )
    return _argmin(fn, args, constraints, x0=x0, solver=solver, max_steps=max_steps,
                   monitor=monitor, linear_solver=linear_solver, throw=throw, earlier=earlier,
                   problem=problem)


@eqx.filter_custom_jvp
def _argmin(fn, args, constraints, *, x0, solver, max_steps, monitor, linear_solver, throw, earlier,
            problem):
    return run_solver(solver, fn, x0, args, max_steps, constraints, monitor, earlier, problem)


@_argmin.def_jvp
def _argmin_jvp(primals, tangents, *, x0, solver, max_steps, monitor, linear_solver, throw, earlier,
                problem):
    fn, args, constraints = primals
    out = _argmin(fn, args, constraints, x0=x0, solver=solver, max_steps=max_steps,
                  monitor=monitor, linear_solver=linear_solver, throw=throw, earlier=earlier,
                  problem=problem)
    x, state = out[0], out[1]
    z, residual = solver.implicit_system(x, state, fn, args, constraints)

    def f_and_residual(fn, args, constraints):
        return solver.objective(fn, x, args), residual(z, fn, args, constraints)

    # d/dtheta of f and of the residual at fixed z, along the input tangents
    _, (df, dr) = eqx.filter_jvp(f_and_residual, primals, tangents)
    _, jacobian = jax.linearize(lambda z: residual(z, fn, args, constraints), z)
    # e.g. `CG(preconditioner="solver")`: the final state's inverse-Hessian approximation
    linear_solver = linear_solver.with_solver_preconditioner(solver.implicit_preconditioner(state))
    dz = _solve_checked(linear_solver, jacobian, -dr.astype(z.dtype), throw)
    dx = dz[: x.shape[0]]
    if throw:
        # derivatives of a failed solve are no derivatives of a solution: the tangent is
        # scaled by a primal value that carries the check, so reverse mode keeps it too
        status = eqx.error_if(out[3], out[3] != Status.CONVERGED,
                              "minimize did not converge: its derivatives are not those of a solution")
        dx = dx * (status == Status.CONVERGED).astype(dx.dtype)
    # envelope theorem: f* moves by df/dtheta + g.dx (g.dx vanishes at an unconstrained
    # solution)
    df = (0.0 if df is None else df.astype(x.dtype)) + jnp.dot(state.g, dx)  # None: only bounds move
    t_state = jax.tree.map(_zero_tangent, state)
    t_state = eqx.tree_at(lambda s: s.f, t_state, df)
    t_state = solver.implicit_state_tangent(t_state, dz)
    return out, (dx, t_state, None, None, None, jax.tree.map(_zero_tangent, out[5]))


def _solve_checked(linear_solver, matvec, b, throw):
    """`linear_solver`'s solution of `A dz = b`, never a silent guess: a solver with an
    `on_failure` field is set to give NaN where its solve does not converge (`CG`), or
    with `throw=True` an error (`CG`, `Lineax`). The setting lives inside the solve, so
    it also guards the transposed solves that reverse mode runs."""
    modes = getattr(linear_solver, "failure_modes", ())
    mode = "raise" if throw else "nan"
    if mode in modes:
        linear_solver = dataclasses.replace(linear_solver, on_failure=mode)
    return linear_solver.solve(matvec, b).x


def _zero_tangent(leaf):
    return jnp.zeros_like(leaf) if jnp.issubdtype(leaf.dtype, jnp.inexact) else None
