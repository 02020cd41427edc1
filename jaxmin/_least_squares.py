"""`least_squares`: nonlinear least squares `min |r(x)|^2 / 2` on `minimize`'s machinery
(input checks, ravelling, the compiled loop, stopping rules, implicit differentiation
on the normal equations `J^T r = 0`)."""

import numbers

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ._compiled import call_method, compiled, is_traced, merge, run
from ._implicit import solve_implicit
from ._minimize import check_x0
from ._monitor import Monitor
from ._ravel import flattener
from ._solution import MESSAGES, Solution, Status, make_solution
from .linear import AbstractLinearSolver
from .solvers._levenberg_marquardt import LevenbergMarquardt
from .solvers._residuals import AbstractLeastSquaresSolver

_ERROR_MESSAGES = [f"least_squares did not converge: {MESSAGES[s]}" for s in Status]


def least_squares(
    residuals,
    x0,
    solver: AbstractLeastSquaresSolver = LevenbergMarquardt(),
    args=(),
    *,
    bounds=None,
    max_steps: int = 1000,
    throw: bool = False,
    verbose: bool = False,
    implicit_solver=None,
) -> Solution:
    """Minimise `|r(x)|^2 / 2` for the residuals `r = residuals(x, *args)`, from `x0`.

    **Arguments:**

    - `residuals`: `residuals(x, *args)` returning a floating array or pytree of them
      (any shapes; they are ravelled); `x` has the structure of `x0`.
    - `x0`: any pytree of floating arrays; the solve runs in its dtype.
    - `solver`: `jm.LevenbergMarquardt()` (default) or `jm.GaussNewton()`.
    - `args`: extra arguments of `residuals`; a non-tuple is taken as `(args,)`.
    - `bounds`: not supported yet (raises `NotImplementedError`).
    - `max_steps`: iteration cap (for `LevenbergMarquardt` one trial point per step).
    - `throw`, `verbose`, `implicit_solver`: as for `jm.minimize`.

    Returns a `jm.Solution` with `fun = |r(x)|^2 / 2` and `grad = J^T r`. The
    residuals at the solution are `sol.state.residuals` (flat, in `ravel_pytree`
    order of the residual pytree) and, where the Jacobian was formed densely,
    `sol.state.jac` is `J` there (`m x n`, in the ravelled coordinates of `r` and
    `x0`; `None` matrix-free). `sol.state.num_jac_evals` counts Jacobians (or
    linearisations). For any problem, `jax.jacfwd(residuals)(sol.x, *args)` gives the
    Jacobian as a pytree.

    As with `minimize`, the solve is one compiled loop, works under `jit` and `vmap`,
    and `sol.x`, `sol.fun` differentiate implicitly (normal equations `J^T r = 0`)
    with respect to `args` and arrays `residuals` closes over.
    """
    if not isinstance(args, tuple):
        args = (args,)
    if not isinstance(solver, AbstractLeastSquaresSolver):
        raise TypeError(
            "`solver` must be a least-squares solver, `jm.LevenbergMarquardt()` or "
            f"`jm.GaussNewton()`; got {solver!r}. (To minimise |r|^2 with another solver, "
            "pass `lambda x: 0.5 * jnp.sum(r(x)**2)` to `jm.minimize`.)"
        )
    if bounds is not None:
        raise NotImplementedError(
            "`least_squares` does not support `bounds` yet. Reparametrise (e.g. "
            "`x = lower + (upper - lower) * jax.nn.sigmoid(z)`), or minimise "
            "`0.5 * jnp.sum(r(x)**2)` with `jm.minimize(..., jm.LBFGS(), bounds=...)`."
        )
    if isinstance(max_steps, bool) or not isinstance(max_steps, numbers.Integral) or max_steps < 0:
        raise ValueError(f"`max_steps` must be a non-negative int; got {max_steps!r}.")
    if implicit_solver is not None and not isinstance(implicit_solver, AbstractLinearSolver):
        raise TypeError(f"`implicit_solver` must be a `jm.linear` solver; got {implicit_solver!r}.")
    check_x0(x0)
    if implicit_solver is None:
        implicit_solver = call_method(solver, "implicit_linear_solver")
    problem = (residuals, x0, args, solver, implicit_solver)
    traced = is_traced(problem)
    sol = run(_solve, problem, x0, (throw and traced, verbose), max_steps)
    if throw and not traced and not bool(sol.success):
        raise RuntimeError(f"least_squares did not converge: {sol.message}")
    return sol


def _check_residuals(residuals, x0, args) -> None:
    out = jax.eval_shape(residuals, x0, *args)
    for leaf in jax.tree.leaves(out):
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise ValueError(f"`residuals` must return floating arrays; got {out}.")
    if sum(leaf.size for leaf in jax.tree.leaves(out)) == 0:
        raise ValueError(f"`residuals` must return at least one residual; got {out}.")


def _solve_body(static, dynamic, max_steps) -> Solution:
    throw, verbose = static.options
    residuals, x0, args, solver, implicit_solver = merge(static, dynamic)
    x0 = jax.tree.map(jnp.asarray, x0)
    _check_residuals(residuals, x0, args)
    x_flat, _, unravel = flattener(x0)

    def flat_residuals(x, *args):
        return ravel_pytree(residuals(unravel(x), *args))[0].astype(x.dtype)

    monitor = Monitor(verbose=verbose, unravel=unravel)
    x, state, num_steps, status, reason, progress = solve_implicit(
        solver, flat_residuals, x_flat, args, max_steps, monitor, implicit_solver, None, throw
    )
    sol = make_solution(solver, x, state, num_steps, status, reason, unravel, None, progress)
    if throw:
        sol = eqx.branched_error_if(sol, ~sol.success, status, _ERROR_MESSAGES)
    return sol


_solve = compiled(_solve_body)
