"""`minimize`: check the inputs, ravel x0, run the compiled loop, build the Solution."""

import math
import numbers

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ._constraints import Constraints, check_bounds, flat_bounds, flat_constraint
from ._implicit import solve_implicit
from ._solution import MESSAGES, Solution, Status
from .linear import AbstractLinearSolver
from .solvers import LBFGS, AbstractSolver

_ERROR_MESSAGES = [f"minimize did not converge: {MESSAGES[s]}" for s in Status]


def _is_dynamic(leaf) -> bool:
    # Floats are traced: a new value (of x0, args or a hyperparameter) compiles
    # nothing and can be differentiated. Ints, bools and other objects are structure.
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic, float, complex))


def _check_x0(x0) -> None:
    leaves = jax.tree.leaves(x0)
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
    - `verbose`: print one line per iteration (also under `jit`).
    - `implicit_solver`: the `jm.linear` solver of the implicit-differentiation rule
      (default: the solver's `implicit_linear_solver()`, `jm.linear.CG()` on the Hessian
      for unconstrained solvers).

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
    _check_options(solver, eq, ineq, bounds, max_steps, implicit_solver)
    _check_x0(x0)
    if implicit_solver is None:
        implicit_solver = solver.implicit_linear_solver()
    if bounds is not None:
        # as float arrays, so new bound values compile nothing
        bounds = jax.tree.map(_as_float, check_bounds(bounds, x0))
    problem = (fn, x0, args, solver, implicit_solver, eq, ineq, bounds)
    leaves, treedef = jax.tree.flatten(problem)
    dynamic = [leaf if _is_dynamic(leaf) else None for leaf in leaves]
    static = tuple(None if _is_dynamic(leaf) else leaf for leaf in leaves)
    # Outside any trace the failure is raised here, as a plain Python error; inside
    # `jit`/`vmap` the compiled solve raises it at run time.
    traced = any(isinstance(leaf, jax.core.Tracer) for leaf in dynamic)
    sol = _solve((treedef, static, throw and traced, verbose), dynamic, np.int32(max_steps))
    if throw and not traced and not bool(sol.success):
        raise RuntimeError(f"minimize did not converge: {sol.message}")
    return sol


def _blocks(x0) -> int:
    """The greatest common divisor of the leading dimensions of `x0`'s leaves, when it
    has several leaves, all of one dtype and none 0-d; else 1."""
    leaves = jax.tree.leaves(x0)
    if len(leaves) < 2 or len({x.dtype for x in leaves}) > 1 or min(x.ndim for x in leaves) == 0:
        return 1
    return math.gcd(*(x.shape[0] for x in leaves)) or 1


def _ravel_blocks(x0, blocks: int):
    """`ravel_pytree(x0)` in block order: every leaf is cut into `blocks` equal blocks
    along its first axis, and the flat vector is block 0 of every leaf, then block 1...

    Leaves sharded along their first axis (`P("x")`, any number of devices dividing
    `blocks`) so ravel with their shards in place: device `i`'s part of the flat vector
    is made of device `i`'s parts of the leaves. `ravel_pytree`'s plain concatenation
    would move every leaf across devices, at every evaluation of `fn`."""
    leaves, treedef = jax.tree.flatten(x0)
    shapes = [x.shape for x in leaves]
    widths = np.cumsum([x.size // blocks for x in leaves])[:-1].tolist()
    flat = jnp.concatenate([x.reshape(blocks, -1) for x in leaves], axis=1).reshape(-1)

    def unravel(flat):
        parts = jnp.split(flat.reshape(blocks, -1), widths, axis=1)
        return jax.tree.unflatten(treedef, [p.reshape(s) for p, s in zip(parts, shapes)])

    return flat, unravel


def _as_float(bound):
    if isinstance(bound, jax.Array):
        return bound if jnp.issubdtype(bound.dtype, jnp.floating) else bound.astype(float)
    return np.asarray(bound, dtype=np.float64)


@jax.jit(static_argnums=0)
def _solve(static, dynamic, max_steps) -> Solution:
    treedef, static_leaves, throw, verbose = static
    leaves = [d if s is None else s for d, s in zip(dynamic, static_leaves)]
    fn, x0, args, solver, implicit_solver, eq, ineq, bounds = jax.tree.unflatten(treedef, leaves)
    x0 = jax.tree.map(jnp.asarray, x0)
    # (bounds are ravelled in ravel_pytree's order)
    blocks = 1 if bounds is not None else _blocks(x0)
    x_flat, unravel = ravel_pytree(x0) if blocks == 1 else _ravel_blocks(x0, blocks)

    def flat_fn(x, *args):
        return fn(unravel(x), *args)

    out = jax.eval_shape(flat_fn, x_flat, *args)
    if not (isinstance(out, jax.ShapeDtypeStruct) and out.shape == ()):
        raise ValueError(f"`fn` must return a scalar; got {out}.")
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(f"`fn` must return a real floating-point scalar; got dtype {out.dtype}.")

    constraints = None
    if eq is not None or ineq is not None or bounds is not None:
        lower, upper = (None, None) if bounds is None else flat_bounds(*bounds, x0)
        constraints = Constraints(
            eq=flat_constraint(eq, unravel, x_flat, args, "eq"),
            ineq=flat_constraint(ineq, unravel, x_flat, args, "ineq"),
            lower=lower, upper=upper,
        )
        x_flat = constraints.project(x_flat)
    x, state, num_steps, status, reason = solve_implicit(
        solver, flat_fn, x_flat, args, max_steps, verbose, implicit_solver, constraints, throw
    )
    success = status == Status.CONVERGED
    sol = Solution(
        x=unravel(x),
        fun=state.f,
        grad=unravel(state.g),
        success=success,
        status=status,
        num_steps=num_steps,
        num_fun_evals=state.num_fun_evals,
        num_hvp_evals=state.num_hvp_evals,
        multipliers=getattr(state, "multipliers", None),
        state=state,
        reason=reason,
        optimality=solver.optimality_norm(state),
    )
    if throw:
        sol = eqx.branched_error_if(sol, ~success, status, _ERROR_MESSAGES)
    return sol
