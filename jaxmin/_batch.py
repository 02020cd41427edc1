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

from ._constraints import Constraints
from ._loop import advance, final_reason, start
from ._ravel import Flattener
from ._solution import Solution, make_solution
from .solvers import LBFGS, AbstractSolver
from .solvers._stopping import status_of


def minimize_batch(fn, x0, solver: AbstractSolver = LBFGS(), args=(), *, max_steps: int = 1000,
                   chunk: int = 16) -> Solution:
    """`jax.vmap(minimize)(x0, args)` for a batch of unconstrained problems, compacted
    every `chunk` steps.

    **Arguments:**

    - `fn`: `fn(x, *args)` returning a real scalar, for one member's `x` (an array or
      pytree: one member's slice of `x0`).
    - `x0`: starts, an array or pytree whose leaves have a leading batch axis.
    - `solver`: an unconstrained solver, e.g. `jm.LBFGS()`.
    - `args`: a tuple of arrays, each batched along its first axis (close over data
      shared by every member).
    - `max_steps`: iteration cap per member.
    - `chunk`: steps between compactions (of the full batch; a batch compacted to
      `1/k` of its size runs `k * chunk` steps before the next).

    Every member runs the steps of its own `minimize` solve: the same loop body
    (`init`, `step`, the stopping tests and the driver's progress and divergence watch)
    and the same verdict, resumed between chunks. (The arithmetic is the same, but XLA
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
    if not isinstance(solver, AbstractSolver) or solver.takes_constraints:
        raise TypeError(f"`solver` must be an unconstrained jaxmin solver such as `jm.LBFGS()`; got {solver!r}.")
    leaves = jax.tree.leaves(x0)
    if not leaves or any(jnp.ndim(v) < 1 for v in leaves):
        raise ValueError("`x0` must be an array or pytree of arrays with a leading batch axis.")
    size = jnp.shape(leaves[0])[0]
    if any(jnp.shape(v)[0] != size for v in leaves):
        raise ValueError(f"every leaf of `x0` needs the same batch size; got {[jnp.shape(v) for v in leaves]}.")
    if chunk < 1:
        raise ValueError(f"`chunk` must be a positive int; got {chunk!r}.")
    flat = Flattener(jax.tree.map(lambda v: jnp.asarray(v)[0], x0))
    carry = _start(fn, solver, flat, x0, args, max_steps)
    active = np.flatnonzero(~np.asarray(carry.done))
    while active.size:
        width = min(1 << int(active.size - 1).bit_length(), size)
        # pad with copies of the last active member: they compute (and write back)
        # exactly what it does
        index = np.concatenate([active, np.full(width - active.size, active[-1])])
        # the fewer members left, the more steps per call: each call costs about
        # `chunk` steps of the full batch, however small the batch has become
        carry = _chunk(fn, solver, flat, carry, args, jnp.asarray(index), max_steps,
                       chunk * (size // width))
        active = active[~np.asarray(carry.done)[active]]
    return _finish(solver, flat, carry)


def _flat_fn(fn, flat):
    return lambda x, *args: fn(flat.unravel(x), *args)


@eqx.filter_jit
def _start(fn, solver, flat, x0, args, max_steps):
    start_one = lambda x, a: start(solver, _flat_fn(fn, flat), flat.ravel(x), a, Constraints(), max_steps)
    return jax.vmap(start_one)(x0, args)


@eqx.filter_jit
def _finish(solver, flat, carry) -> Solution:
    def one(carry):
        reason = final_reason(solver, carry)
        return make_solution(solver, carry.x, carry.state, carry.n, status_of(reason), reason,
                             flat.unravel, progress=carry.watch)

    return jax.vmap(one)(carry)


@eqx.filter_jit
def _chunk(fn, solver, flat, carry, args, index, max_steps, chunk):
    """Up to `chunk` more steps of the members `index` (one compiled call: gather, run
    vmapped, scatter back)."""

    def one(carry, args):
        body = advance(solver, _flat_fn(fn, flat), args, Constraints(), max_steps)

        def cond(c):
            return ~c[0].done & (c[1] < chunk)

        carry, _ = lax.while_loop(cond, lambda c: (body(c[0]), c[1] + 1), (carry, jnp.array(0, jnp.int32)))
        return carry

    take = lambda a: a[index]
    out = jax.vmap(one)(*jax.tree.map(take, (carry, args)))
    return jax.tree.map(lambda a, b: a.at[index].set(b), carry, out)
