"""`minimize`: check the inputs, ravel x0, run the compiled loop, build the Solution."""

import numbers

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._compiled import call_method, compiled, is_traced, merge, run
from ._constraints import Constraints, check_bounds, flat_bounds, flat_constraint
from ._implicit import solve_implicit
from ._monitor import Monitor
from ._ravel import flattener
from ._solution import MESSAGES, Solution, Status, make_solution
from ._warm import check_compatible, earlier_from, fingerprint
from .linear import AbstractLinearSolver
from .solvers import LBFGS, AbstractSolver

_ERROR_MESSAGES = [f"minimize did not converge: {MESSAGES[s]}" for s in Status]


def check_x0(x0) -> None:
    """A clear error for an `x0` that is not a non-empty pytree of floating arrays."""
    leaves = jax.tree.leaves(x0)
    if isinstance(x0, (list, tuple)) and leaves and all(isinstance(v, (int, float)) for v in leaves):
        raise TypeError(
            f"`x0` is a Python {type(x0).__name__} of numbers, which is a pytree of separate "
            "scalars; pass an array instead: `jnp.asarray(x0, float)`."
        )
    if not leaves:
        raise ValueError("`x0` must contain at least one array; got an empty pytree.")
    for leaf in leaves:
        dtype = getattr(leaf, "dtype", None)
        if dtype is None:
            if isinstance(leaf, float):
                continue
            raise ValueError(
                f"`x0` must be a pytree of floating arrays; got a leaf of type "
                f"{type(leaf).__name__} ({leaf!r}). Use e.g. `jnp.asarray(x0, float)`."
            )
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(
                f"`x0` must be floating point (float32 or float64); got dtype {dtype}. "
                "Convert it, e.g. `x0.astype(jnp.float32)`."
            )


def _check_options(solver, eq, ineq, bounds, max_steps, implicit_solver) -> None:
    if not isinstance(solver, AbstractSolver):
        raise TypeError(f"`solver` must be a jaxmin solver such as `jm.LBFGS()`; got {solver!r}.")
    name = type(solver).__name__
    if solver.takes_residuals:
        raise TypeError(f"{name} is a least-squares solver: use `jm.least_squares(residuals, x0, jm.{name}())`.")
    if (eq is not None or ineq is not None) and not solver.takes_constraints:
        raise ValueError(
            f"{name} is an unconstrained solver and does not take `eq`/`ineq` "
            "constraints; use a constrained solver such as `jm.SQP`."
        )
    if bounds is not None and not solver.takes_bounds:
        raise ValueError(
            f"{name} does not take `bounds`; use `jm.LBFGS` (L-BFGS-B) or `jm.SQP`."
        )
    for c, c_name in ((eq, "eq"), (ineq, "ineq")):
        if c is not None and not callable(c):
            raise TypeError(f"`{c_name}` must be a function `{c_name}(x, *args)`; got {c!r}.")
    if isinstance(max_steps, bool) or not isinstance(max_steps, numbers.Integral) or max_steps < 0:
        raise ValueError(f"`max_steps` must be a non-negative int; got {max_steps!r}.")
    if implicit_solver is not None and not isinstance(implicit_solver, AbstractLinearSolver):
        raise TypeError(
            f"`implicit_solver` must be a `jm.linear` solver such as `jm.linear.CG()`; got "
            f"{implicit_solver!r}."
        )


def minimize(
    fn,
    x0,
    solver: AbstractSolver = LBFGS(),
    args=(),
    *,
    eq=None,
    ineq=None,
    bounds=None,
    max_steps: int = 1000,
    throw: bool = False,
    verbose: bool = False,
    implicit_solver=None,
    has_aux: bool = False,
    callback=None,
    warm_start=None,
) -> Solution:
    """Minimise `fn(x, *args)` over `x`, starting from `x0`.

    **Arguments:**

    - `fn`: `fn(x, *args)` returning a real scalar; `x` has the structure of `x0`.
    - `x0`: any pytree of floating arrays; the solve runs in its dtype.
    - `solver`: e.g. `jm.LBFGS()`.
    - `args`: extra arguments of `fn`; a non-tuple is taken as `(args,)`.
    - `eq`, `ineq`: `eq(x, *args)` an array that must be 0, `ineq(x, *args)` one that
      must be >= 0; for constrained solvers (`jm.SQP`).
    - `bounds`: `(lower, upper)`, each a scalar or a pytree shaped like `x0` (`-inf`,
      `inf` or `None` for a free side); for `jm.LBFGS` and `jm.SQP`. `x0` is projected
      into the bounds first, and the iterates never leave them.
    - `max_steps`: iteration cap (`Status.MAX_STEPS` when reached).
    - `throw`: raise (also under `jit`) when the solve did not converge.
    - `verbose`: print a header naming the columns, one line per iteration (step 0
      included) and a closing line with the status and counts, also under `jit`; under
      `vmap` each line starts with the member's index in the batch.
    - `implicit_solver`: the `jm.linear` solver of the implicit-differentiation rule
      (default: the solver's `implicit_linear_solver()`, `jm.linear.CG()` on the Hessian
      for unconstrained solvers).
    - `has_aux`: `fn` returns `(value, aux)`, any pytree `aux`; `sol.aux` is aux at the
      solution (evaluated once there, after the solve), differentiable like `sol.x`.
    - `callback`: `callback(step, x, f, grad)`, called on the host with concrete values
      at the start (step 0) and after every step, also under `jit` and `vmap` (once per
      member); `x` and `grad` shaped like `x0`. For monitoring and logging: its return
      value is ignored and it cannot stop the solve.
    - `warm_start`: an earlier `Solution` of this solver on a problem of the same shape
      (or its `.state`): start at `x0` with that solve's memory instead of an empty one
      (`jaxmin._warm` says what is kept). `minimize(fn, sol.x, solver, args,
      warm_start=sol)` continues `sol` exactly (bit for bit where both calls are compiled
      alike: both direct, or both under `jit`); with new `args` the memory is a refreshed
      guess. `num_steps` and the evaluation counts continue from `sol`'s; `max_steps`
      caps the steps of this call. Derivatives are those of a cold solve (zero with
      respect to the warm start).

    The whole solve is one compiled `lax.while_loop`. Calling again with the same
    `fn` object, an equal solver and inputs of the same shapes compiles nothing; float
    leaves of `x0`, `args` and the solver's hyperparameters are traced, other leaves
    are static. Works under `jax.jit` and `jax.vmap`.

    `sol.x` and `sol.fun` are differentiable (`jax.grad`, `jax.jacrev`, `jax.jacfwd`,
    `jax.jvp`, and `vmap` of them) with respect to every floating array in `args` and
    every array `fn` closes over, by the implicit function theorem: never through the
    loop. The derivative with respect to `x0` is zero. They are derivatives of a
    solution only where the solve converged: check `sol.success`, or pass `throw=True`,
    which raises (also under `jit`) when derivatives of a failed solve are computed.
    """
    if not isinstance(args, tuple):
        args = (args,)
    if bounds is not None and isinstance(solver, AbstractSolver):
        solver = call_method(solver, "with_bounds")  # e.g. `jm.LBFGS` with bounds is `jm.LBFGSB`
    _check_options(solver, eq, ineq, bounds, max_steps, implicit_solver)
    if callback is not None and not callable(callback):
        raise TypeError(f"`callback` must be a function `callback(step, x, f, grad)`; got {callback!r}.")
    check_x0(x0)
    if implicit_solver is None:
        implicit_solver = call_method(solver, "implicit_linear_solver")
    if bounds is not None:
        # as float arrays, so new bound values compile nothing
        bounds = jax.tree.map(_as_float, check_bounds(bounds, x0))
    earlier = None if warm_start is None else earlier_from(warm_start)
    problem = (fn, x0, args, solver, implicit_solver, eq, ineq, bounds, callback, earlier)
    # Outside any trace the failure is raised here, as a plain Python error; inside
    # `jit`/`vmap` the compiled solve raises it at run time.
    traced = is_traced(problem)
    # inside the caller's trace, arrays that are not traced (closed over by its `jit`)
    # are digested here, once, as constants; outside, all are digested in the solve
    digest = _digest(fn, args, solver, eq, ineq, bounds) if traced else None
    problem = (*problem, digest)
    try:
        sol = run(_solve, problem, x0, (throw and traced, verbose, bool(has_aux)), max_steps)
    except jax.errors.TracerBoolConversionError as error:
        raise TypeError(_PYTHON_CONTROL_FLOW) from error
    except jax.errors.ConcretizationTypeError as error:
        raise TypeError(_PYTHON_NUMBER) from error
    if throw and not traced and not bool(sol.success):
        raise RuntimeError(f"minimize did not converge: {sol.message}")
    return sol


def _as_float(bound):
    if isinstance(bound, jax.Array):
        return bound if jnp.issubdtype(bound.dtype, jnp.floating) else bound.astype(float)
    return np.asarray(bound, dtype=np.float64)


_PYTHON_CONTROL_FLOW = (
    "`fn`, a constraint or a learning-rate schedule used Python control flow (`if`, "
    "`while`, `bool(...)`) on a traced value: the solve is compiled, so x, args and the "
    "step counter are traced arrays, not Python numbers. Use `jnp.where(cond, a, b)` or "
    "`jax.lax.cond` instead (e.g. a schedule `lambda k: jnp.where(k < 100, 0.1, 0.01)`)."
)


_PYTHON_NUMBER = (
    "`fn` (or a constraint) turned a traced value into a Python or NumPy number "
    "(`float(...)`, `.item()`, `np.asarray(...)`): the solve is compiled, so x and args "
    "are traced arrays. Keep the computation in `jax.numpy` and return a JAX scalar."
)


def _objective(fn, has_aux: bool):
    """`fn` as the scalar objective the solvers minimise (its value, when it has aux)."""
    if not has_aux:
        return fn
    return lambda x, *args: fn(x, *args)[0]


def _check_output(fn, has_aux, x0, args) -> None:
    out = jax.eval_shape(fn, x0, *args)
    if has_aux:
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ValueError(f"With `has_aux=True`, `fn` must return a pair `(value, aux)`; got {out}.")
        out = out[0]
    if not isinstance(out, jax.ShapeDtypeStruct) or out.shape != ():
        hint = " (for `(value, aux)`, pass `has_aux=True`)" if isinstance(out, tuple) else ""
        raise ValueError(f"`fn` must return a scalar array; got {out}{hint}.")
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(
            f"`fn` must return a real floating-point scalar; got dtype {out.dtype}"
            + (" (a Python int or bool: return a JAX array built from x)" if out.weak_type else "")
            + "."
        )


def _digest(fn, args, solver, eq, ineq, bounds):
    """`_warm.fingerprint` of the problem: the same in `minimize` and in `_solve_body`
    (where the leaves `run` traces are arrays, the others as they were)."""
    return fingerprint((fn, args, solver, eq, ineq, bounds))


def _solve_body(static, dynamic, max_steps) -> Solution:
    throw, verbose, has_aux = static.options
    (fn, x0, args, solver, implicit_solver, eq, ineq, bounds, callback, earlier,
     digest) = merge(static, dynamic)
    x0 = jax.tree.map(jnp.asarray, x0)
    _check_output(fn, has_aux, x0, args)
    x_flat, ravel, unravel = flattener(x0)
    objective = _objective(fn, has_aux)

    def flat_fn(x, *args):
        return objective(unravel(x), *args)

    constraints = None
    if eq is not None or ineq is not None or bounds is not None:
        lower, upper = (None, None) if bounds is None else flat_bounds(*bounds, x0, ravel)
        constraints = Constraints(
            eq=flat_constraint(eq, unravel, x_flat, args, "eq"),
            ineq=flat_constraint(ineq, unravel, x_flat, args, "ineq"),
            lower=lower, upper=upper,
        )
        x_flat = constraints.project(x_flat)
    if earlier is not None:
        box = Constraints() if constraints is None else constraints
        fresh = jax.eval_shape(lambda x, args: solver.init(flat_fn, x, args, box), x_flat, args)
        check_compatible(solver, fresh, earlier)
        if earlier.x is not None:
            earlier = earlier._replace(x=ravel(earlier.x))
    monitor = Monitor(verbose=verbose, callback=callback, unravel=unravel)
    # the problem's digest: a later warm start continues this solve exactly only if equal
    problem = _digest(fn, args, solver, eq, ineq, bounds) if digest is None else digest
    x, state, num_steps, status, reason, progress = solve_implicit(
        solver, flat_fn, x_flat, args, max_steps, monitor, implicit_solver, constraints, throw,
        earlier, problem,
    )
    aux = fn(unravel(x), *args)[1] if has_aux else None
    sol = make_solution(solver, x, state, num_steps, status, reason, unravel, aux, progress)
    if throw:
        sol = eqx.branched_error_if(sol, ~sol.success, status, _ERROR_MESSAGES)
    return sol


_solve = compiled(_solve_body)
