"""Derivatives of a solution by the implicit function theorem (one `custom_jvp`).

At a solution the optimality residual vanishes, `r(x*(theta), theta) = 0` (the gradient
for unconstrained solvers), so `dx*/dtheta = -(dr/dx)^{-1} dr/dtheta`: a linear solve
with the Hessian, matrix-free, never differentiating through the loop.
"""

import equinox as eqx
import jax
import jax.numpy as jnp

from ._loop import run_solver
from ._typing import Vector


def solve_implicit(solver, fn, x0: Vector, args: tuple, max_steps, verbose, linear_solver):
    """`run_solver(...)` whose `x` (and the state's `f`) differentiate implicitly with
    respect to every floating array in `args` and every array `fn` closes over.

    The derivative with respect to `x0` is zero.
    """
    # closed-over arrays become explicit leaves of `fn`, so they are differentiable
    # inputs rather than leaked tracers
    fn = eqx.filter_closure_convert(fn, x0, *args)
    # x0 and the solvers' hyperparameters are not differentiated: cut their tangents
    x0, solver, linear_solver = jax.lax.stop_gradient((x0, solver, linear_solver))
    return _argmin(fn, args, x0=x0, solver=solver, max_steps=max_steps, verbose=verbose,
                   linear_solver=linear_solver)


@eqx.filter_custom_jvp
def _argmin(fn, args, *, x0, solver, max_steps, verbose, linear_solver):
    return run_solver(solver, fn, x0, args, max_steps, verbose)


@_argmin.def_jvp
def _argmin_jvp(primals, tangents, *, x0, solver, max_steps, verbose, linear_solver):
    fn, args = primals
    out = _argmin(fn, args, x0=x0, solver=solver, max_steps=max_steps, verbose=verbose,
                  linear_solver=linear_solver)
    x, state = out[0], out[1]

    def f_and_residual(fn, args):
        return fn(x, *args), solver.residual(x, fn, args)

    # d/dtheta of f and of the residual at fixed x, along the input tangents
    _, (df, dr) = eqx.filter_jvp(f_and_residual, primals, tangents)
    _, jacobian = jax.linearize(lambda z: solver.residual(z, fn, args), x)
    dx = linear_solver.solve(jacobian, -dr.astype(x.dtype)).x
    # envelope theorem: f* moves by df/dtheta (+ g.dx, zero at an exact solution)
    df = df.astype(x.dtype) + jnp.dot(state.g, dx)
    t_state = jax.tree.map(_zero_tangent, state)
    t_state = eqx.tree_at(lambda s: s.f, t_state, df)
    return out, (dx, t_state, None, None)


def _zero_tangent(leaf):
    return jnp.zeros_like(leaf) if jnp.issubdtype(leaf.dtype, jnp.inexact) else None
