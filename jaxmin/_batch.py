"""`minimize_batch`: many independent solves, with finished members dropped every few
steps, so that one slow member does not keep the whole batch iterating.

Under `jax.vmap(minimize)` the while loop runs until the slowest member is done, and
every iteration costs a full batch's work. Here the loop runs `chunk` steps at a time
(on the device, vmapped); between chunks the host keeps only the unfinished members,
padded to a power of two so that at most log2(batch) + 1 programs are compiled.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._solution import Reason, Solution, Status
from .solvers import LBFGS, AbstractSolver


def minimize_batch(fn, x0, solver: AbstractSolver = LBFGS(), args=(), *, max_steps: int = 1000,
                   chunk: int = 16) -> Solution:
    """`jax.vmap(minimize)(x0, args)` for a batch of flat problems, compacted every
    `chunk` steps.

    **Arguments:**

    - `fn`: `fn(x, *args)` returning a real scalar, for one member's `x` of shape `(n,)`.
    - `x0`: starts, shape `(batch, n)`.
    - `solver`: an unconstrained solver, e.g. `jm.LBFGS()`.
    - `args`: a tuple of arrays, each batched along its first axis (close over data
      shared by every member).
    - `max_steps`: iteration cap per member.
    - `chunk`: steps between compactions (of the full batch; a batch compacted to
      `1/k` of its size runs `k * chunk` steps before the next).

    Every member runs the steps of its own `minimize` solve: same `init`, `step` and
    stopping tests, resumed from the solver state (the driver loop's stall and
    divergence watch is not applied: a hovering member runs to `max_steps`). (The arithmetic is the same, but XLA
    compiles each batch size separately and may round the last bit differently, e.g.
    by contracting other multiply-adds into FMAs; an ill-conditioned member can then
    take a few steps more or fewer than under `vmap`.) Returns a `Solution` whose
    fields have a leading batch axis. Not differentiable (no implicit-function rule):
    differentiate `jax.vmap(minimize)` instead. Call it outside `jax.jit`: the host
    decides which members continue. Compaction gathers the unfinished members, so on a
    batch sharded across devices it moves them across devices (a rebalancing).
    """
    if not isinstance(args, tuple):
        args = (args,)
    if x0.ndim != 2:
        raise ValueError(f"`x0` must have shape (batch, n); got {x0.shape}.")
    if chunk < 1:
        raise ValueError(f"`chunk` must be a positive int; got {chunk!r}.")
    x, state = _init(fn, solver, x0, args)
    steps = jnp.zeros(x0.shape[0], jnp.int32)
    active = np.flatnonzero(~np.asarray(_done(solver, state, steps, max_steps)))
    while active.size:
        size = min(1 << int(active.size - 1).bit_length(), x0.shape[0])
        # pad with copies of the last active member: they compute (and write back)
        # exactly what it does
        index = np.concatenate([active, np.full(size - active.size, active[-1])])
        # the fewer members left, the more steps per call: each call costs about
        # `chunk` steps of the full batch, however small the batch has become
        x, state, steps, done = _chunk(fn, solver, x, state, steps, args, jnp.asarray(index),
                                       max_steps, chunk * (x0.shape[0] // size))
        active = active[~np.asarray(done)[: active.size]]
    return _finish(solver, x, state, steps)


@eqx.filter_jit
def _finish(solver, x, state, steps) -> Solution:
    done, status, reason = jax.vmap(solver.verdict)(state)
    status = jnp.where(done, status, Status.MAX_STEPS).astype(jnp.int32)
    reason = jnp.where(done, reason, Reason.MAX_STEPS).astype(jnp.int32)
    return Solution(
        x=x, fun=state.f, grad=state.g, success=status == Status.CONVERGED, status=status,
        num_steps=steps, num_fun_evals=state.num_fun_evals, num_hvp_evals=state.num_hvp_evals,
        multipliers=None, state=state, reason=reason,
        optimality=jax.vmap(solver.optimality_norm)(state),
    )


@eqx.filter_jit
def _init(fn, solver, x0, args):
    return x0, jax.vmap(lambda x, a: solver.init(fn, x, a))(x0, args)


@eqx.filter_jit
def _done(solver, state, steps, max_steps):
    return jax.vmap(solver.terminate)(state)[0] | (steps >= max_steps)


@eqx.filter_jit
def _chunk(fn, solver, x, state, steps, args, index, max_steps, chunk):
    """Up to `chunk` more steps of the members `index` (one compiled call: gather, run
    vmapped, scatter back); also says which of them are done."""

    def one(x, state, n, args):
        def cond(carry):
            _, state, n, i = carry
            return ~solver.terminate(state)[0] & (n < max_steps) & (i < chunk)

        def body(carry):
            x, state, n, i = carry
            x, state = solver.step(fn, x, state, args)
            return x, state, n + 1, i + 1

        x, state, n, _ = lax.while_loop(cond, body, (x, state, n, jnp.array(0, jnp.int32)))
        return x, state, n

    take = lambda a: a[index]
    out = jax.vmap(one)(*jax.tree.map(take, (x, state, steps, args)))
    put = lambda a, b: a.at[index].set(b)
    x, state, steps = jax.tree.map(put, (x, state, steps), out)
    return x, state, steps, _done(solver, out[1], out[2], max_steps)
