"""Warm starts: a solve that continues from an earlier solve's solver state.

Outer loops re-solve nearly the same problem again and again (a hyperparameter step, a
continuation in a parameter, a model-predictive controller's next tick), and a long
solve may be stopped and continued. `minimize(..., warm_start=sol)` starts at `x0` with
`sol`'s solver memory (L-BFGS pairs, the BFGS matrix, SQP's Hessian approximation and
multipliers, first-order step counters) instead of an empty one.

Where `x0` is the earlier solve's `x` and the problem is the same (a digest of the bits
of every array of the problem, `args`, closed-over arrays, bounds and hyperparameters,
equals the earlier one), the earlier state is kept whole: a solve stopped after `k`
steps and resumed takes exactly the iterates, steps and evaluations of the
uninterrupted solve. Otherwise the memory is a guess, refreshed safely: the solve starts
from a fresh state at `x0` (f, g and whatever the solver derives from them evaluated
with the current `args`) into which the solver carries the parts of its memory that
stay valid (`AbstractSolver.warm_state`), and the driver's progress record starts anew.
"""

from typing import Any, Optional

import equinox as eqx
import jax
import jax.numpy as jnp

from ._solution import Solution
from .solvers import AbstractSolver


class Earlier(eqx.Module):
    """What a warm start takes from an earlier solve: the solver state, the driver's
    progress record (`None`: start a new one), the steps taken so far and the earlier
    `x` (`None` when only a state was given)."""

    state: Any
    progress: Optional[Any]
    num_steps: jax.Array
    x: Optional[Any]


def earlier_from(warm_start) -> Earlier:
    """`minimize(warm_start=...)`: a `Solution` or a solver state."""
    if isinstance(warm_start, Solution):
        return Earlier(warm_start.state, warm_start.progress,
                       jnp.asarray(warm_start.num_steps, jnp.int32), warm_start.x)
    if isinstance(warm_start, eqx.Module) and hasattr(warm_start, "f") and hasattr(warm_start, "g"):
        return Earlier(warm_start, None, jnp.array(0, jnp.int32), None)
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
    """A uint32 digest of every array in `tree` (its bits, not its values: exact and
    the same in any compiled program), so that a warm start can tell whether it
    continues the same problem: `fn`'s closed-over arrays, `args`, bounds and the
    solver's hyperparameters."""
    total = jnp.zeros((), jnp.uint32)
    for k, leaf in enumerate(jax.tree.leaves(tree)):
        leaf = jnp.asarray(leaf)
        if jnp.issubdtype(leaf.dtype, jnp.floating) or jnp.issubdtype(leaf.dtype, jnp.complexfloating):
            parts = [jnp.real(leaf), jnp.imag(leaf)] if jnp.iscomplexobj(leaf) else [leaf]
            words = [_words(p) for p in parts]
        else:
            words = [leaf.astype(jnp.uint32).ravel()]
        for w in words:
            index = jnp.arange(w.size, dtype=jnp.uint32)
            mixed = (w ^ (index * jnp.uint32(0x9E3779B9))) * jnp.uint32(0x85EBCA6B)
            total = total + jnp.sum(mixed, dtype=jnp.uint32) * jnp.uint32(2 * k + 1)
    return total


def _words(x) -> jax.Array:
    """The bits of a float array as uint32 words (a float64 folds its two halves)."""
    x = x.ravel()
    if x.dtype.itemsize == 8:
        bits = jax.lax.bitcast_convert_type(x, jnp.uint64)
        return (bits >> 32).astype(jnp.uint32) ^ (bits & 0xFFFFFFFF).astype(jnp.uint32)
    return jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)


def resumes(x0, old_x, digest, old_digest) -> jax.Array:
    """Whether the start continues the earlier solve: the same `x` and the same
    problem (equal digests)."""
    if old_x is None or old_digest is None:
        return jnp.array(False)
    return jnp.all(x0 == old_x) & (digest == old_digest)


def warm_state(solver: AbstractSolver, fresh, old, same):
    """The state to continue from: `old` whole where the start resumes the earlier solve
    (`same`), else `fresh` with the memory `solver.warm_state` keeps, and the counts
    added up."""
    warmed = solver.warm_state(fresh, old)
    warmed = eqx.tree_at(
        lambda s: (s.num_fun_evals, s.num_hvp_evals), warmed,
        (old.num_fun_evals + fresh.num_fun_evals, old.num_hvp_evals + fresh.num_hvp_evals),
    )
    return jax.tree.map(lambda a, b: jnp.where(same, a, b), old, warmed)
