"""`run_solver`: the single `lax.while_loop` that drives every solver."""

import functools

import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np

from ._solution import Status


def _print_progress(label, n, f, gnorm, alpha, ls_evals):
    # runs on the host; values may be batched under vmap, so format elementwise
    fmt = lambda v, spec: np.array2string(np.asarray(v), formatter={"all": lambda e: format(e, spec)})
    print(
        f"step {fmt(n, 'd')}  f {fmt(f, '.9e')}  {label} {fmt(gnorm, '.3e')}  "
        f"alpha {fmt(alpha, '.3e')}  ls_evals {fmt(ls_evals, 'd')}",
        flush=True,
    )


def run_solver(solver, fn, x0, args, max_steps, verbose=False, constraints=None):
    """Run `solver` from `x0` until `terminate` says done or `max_steps` steps.

    `constraints` (a `Constraints`, or `None`) is passed on to `init` and `step` only
    when present, so unconstrained solvers never see it.

    Returns `(x, state, num_steps, status)`. A solve stopped by the step cap before
    the solver terminated gets `Status.MAX_STEPS`.
    """

    def cond(carry):
        return ~carry[3]

    def body(carry):
        x, state, n, _ = carry
        x, state = solver.step(fn, x, state, args, *extra)
        n = n + 1
        if verbose:
            jax.debug.callback(
                functools.partial(_print_progress, solver.optimality_label(state)), n, state.f, solver.optimality_norm(state), state.alpha,
                state.ls_evals,
            )
        done, _ = solver.terminate(state)
        return x, state, n, done | (n >= max_steps)

    extra = () if constraints is None else (constraints,)
    state = solver.init(fn, x0, args, *extra)
    done, _ = solver.terminate(state)
    n0 = jnp.array(0, jnp.int32)
    x, state, n, _ = lax.while_loop(cond, body, (x0, state, n0, done | (max_steps <= 0)))
    done, status = solver.terminate(state)
    return x, state, n, jnp.where(done, status, Status.MAX_STEPS).astype(jnp.int32)
