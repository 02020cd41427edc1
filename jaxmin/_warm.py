"""Warm starts: a solve that continues from an earlier solve's solver state.

Outer loops re-solve nearly the same problem again and again (a hyperparameter step, a
continuation in a parameter, a model-predictive controller's next tick), and a long
solve may be stopped and continued. `minimize(..., warm_start=sol)` starts at `x0` with
`sol`'s solver memory (L-BFGS pairs, the BFGS matrix, SQP's Hessian approximation and
multipliers, first-order step counters) instead of an empty one.

Where `x0` is the earlier solve's `x` and the problem is the same (a digest of every
array and number of the problem, `args`, what `fn` holds or captures, bounds and
hyperparameters, equals the earlier one: `fingerprint`), the earlier state is kept
whole and nothing is evaluated at the start: a solve stopped after `k` steps and
resumed takes exactly the iterates, steps and evaluations of the uninterrupted solve.
Otherwise the memory is a guess, refreshed safely: the solve starts from a fresh state
at `x0` (f, g and whatever the solver derives from them evaluated with the current
`args`) into which the solver carries the parts of its memory that stay valid
(`AbstractSolver.warm_state`), and the driver's progress record starts anew.
"""

from typing import Any, NamedTuple, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._captured import captured_values
from ._solution import Solution
from .solvers import AbstractSolver


class Earlier(NamedTuple):
    """What a warm start takes from an earlier solve: the solver state, the driver's
    progress record (`None`: start a new one), the steps taken so far and the earlier
    `x` (`None` when only a state was given). (A tuple: built on every call, where an
    `eqx.Module` would cost more.)"""

    state: Any
    progress: Optional[Any]
    num_steps: Any  # an int32 array, or 0
    x: Optional[Any]


def earlier_from(warm_start) -> Earlier:
    """`minimize(warm_start=...)`: a `Solution` or a solver state."""
    if isinstance(warm_start, Solution):
        return Earlier(warm_start.state, warm_start.progress, warm_start.num_steps, warm_start.x)
    if isinstance(warm_start, eqx.Module) and hasattr(warm_start, "f") and hasattr(warm_start, "g"):
        return Earlier(warm_start, None, np.int32(0), None)
    raise TypeError(
        "`warm_start` must be an earlier `jm.Solution` (or its `.state`) of the same solver "
        f"and problem shape; got {type(warm_start).__name__}."
    )


def check_compatible(solver: AbstractSolver, fresh_shape, earlier: Earlier) -> None:
    """Raise unless `earlier.state` has the structure, shapes and dtypes of the state
    this solve's `init` makes (`fresh_shape`, from `jax.eval_shape`)."""
    want = jax.tree.structure(fresh_shape)
    got = jax.tree.structure(earlier.state)
    same = want == got and all(
        jnp.shape(a) == b.shape and jnp.result_type(a) == b.dtype
        for a, b in zip(jax.tree.leaves(earlier.state), jax.tree.leaves(fresh_shape))
    )
    if not same:
        raise ValueError(
            f"`warm_start` holds a state that {type(solver).__name__} cannot continue: it comes "
            "from another solver, another problem size or dtype, or another kind of problem "
            "(bounds or constraints added or removed)."
        )


def fingerprint(tree) -> jax.Array:
    """A uint32 digest of the problem `tree` holds, so that a warm start can tell
    whether it continues the same problem: every array and number among its leaves
    (`args`, bounds, the solver's hyperparameters, the arrays of an `eqx.Module` `fn`)
    and among what its functions capture (`_captured.captured_values`). Arrays count by
    their bits, not their values: exact, and the same in any compiled program.

    An array that is not traced (a constant of the compiled program: an array `fn`
    closes over, or `args` closed over by the caller's `jit`) is digested once, while
    tracing, and costs nothing at run time; a traced one is read once per solve."""
    total = jnp.zeros((), jnp.uint32)
    for k, value in enumerate(captured_values(tree)):
        if isinstance(value, (bool, int)):  # (static: a Python int has no bits to read)
            part = jnp.uint32((value ^ (value >> 32)) & 0xFFFFFFFF)
        elif isinstance(value, jax.core.Tracer):
            part = _leaf_digest(jax.lax.stop_gradient(value))
        else:
            with jax.ensure_compile_time_eval():
                part = _leaf_digest(jnp.asarray(value))
        total = total + part * jnp.uint32(2 * k + 1)
    return total


@jax.jit
def _leaf_digest(leaf) -> jax.Array:
    """One array's digest: every word of its bits, mixed with its position, summed."""
    if jnp.issubdtype(leaf.dtype, jnp.floating) or jnp.issubdtype(leaf.dtype, jnp.complexfloating):
        parts = [jnp.real(leaf), jnp.imag(leaf)] if jnp.iscomplexobj(leaf) else [leaf]
        words = [_words(p) for p in parts]
    else:
        words = [leaf.astype(jnp.uint32).ravel()]
    total = jnp.zeros((), jnp.uint32)
    for w in words:
        index = jnp.arange(w.size, dtype=jnp.uint32)
        mixed = (w ^ (index * jnp.uint32(0x9E3779B9))) * jnp.uint32(0x85EBCA6B)
        total = total + jnp.sum(mixed, dtype=jnp.uint32)  # (exact: the same in any order)
    return total


def _words(x) -> jax.Array:
    """The bits of a float array as uint32 words (a float64 folds its two halves)."""
    x = x.ravel()
    if x.dtype.itemsize == 8:
        bits = jax.lax.bitcast_convert_type(x, jnp.uint64)
        return (bits >> 32).astype(jnp.uint32) ^ (bits & 0xFFFFFFFF).astype(jnp.uint32)
    return jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)


def continue_or_refresh(earlier: Earlier, x0, digest, refresh):
    """`(state, progress)` to start from: `earlier`'s own where the start continues
    it (the same `x` and equal digests, so the problem is the same), else `refresh()`,
    a fresh start at `x0` (`refreshed_state`). A `lax.cond`: continuing evaluates
    nothing (f and g are the earlier state's); under `vmap` with a batched decision
    both sides run and each member takes its own."""
    old_digest = None if earlier.progress is None else earlier.progress.problem
    if earlier.x is None or old_digest is None:  # (a batch's record has no digest)
        return refresh()
    same = jnp.all(x0 == earlier.x) & (digest == old_digest)
    return jax.lax.cond(same, lambda: (earlier.state, earlier.progress), refresh)


def refreshed_state(solver: AbstractSolver, fresh, old):
    """`fresh` (`init` at the new start) with the memory `solver.warm_state` keeps of
    `old`, and the counts added up."""
    warmed = solver.warm_state(fresh, old)
    return eqx.tree_at(
        lambda s: (s.num_fun_evals, s.num_hvp_evals), warmed,
        (old.num_fun_evals + fresh.num_fun_evals, old.num_hvp_evals + fresh.num_hvp_evals),
    )
