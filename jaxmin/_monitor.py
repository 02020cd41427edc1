"""`Monitor`: what a solve reports on the host while it runs (`verbose=True`, `callback=`).

Both run through `jax.debug.callback`, so they work under `jit` and `vmap` (under `vmap`
once per member, each line prefixed with the member's index in the innermost batch).
"""

from typing import Callable, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_batching import custom_vmap

from ._solution import Reason, Status

_COLUMNS = (
    "columns: step | f | {label}: the measure `gtol` bounds | alpha: step length | "
    "ls_evals: line-search evaluations of that step"
)


@custom_vmap
def _member(*batched_if_any):
    """-1 outside `vmap`; under `vmap` (of any of its inputs), each member's index in
    the (innermost) batch."""
    del batched_if_any
    return jnp.array(-1, jnp.int32)


@_member.def_vmap
def _member_vmap(axis_size, in_batched, *batched_if_any):
    del in_batched, batched_if_any
    return jnp.arange(axis_size, dtype=jnp.int32), True


def _prefix(member) -> str:
    member = int(member)
    return "" if member < 0 else f"[{member}] "


def _print_header(label, member):
    print(_prefix(member) + _COLUMNS.format(label=label), flush=True)


def _print_step(label, member, n, f, opt, alpha, ls_evals):
    print(
        f"{_prefix(member)}step {int(n):5d}  f {float(f): .9e}  {label} {float(opt):.3e}  "
        f"alpha {float(alpha):.3e}  ls_evals {int(ls_evals):3d}",
        flush=True,
    )


def _print_end(member, n, status, reason, f, opt, evals, hvps):
    status, reason = Status(int(status)).name, Reason(int(reason)).name
    verdict = status if reason == status else f"{status} ({reason})"
    print(
        f"{_prefix(member)}done: {verdict} after "
        f"{int(n)} steps, f {float(f):.9e}, optimality {float(opt):.3e}, {int(evals)} "
        f"evaluations of fn" + (f", {int(hvps)} Hessian-vector products" if int(hvps) else ""),
        flush=True,
    )


class Monitor(eqx.Module):
    """Host-side reporting of a solve.

    - `verbose`: print a header naming the columns, a line for step 0 and for every
      step, and a closing line with the status and counts.
    - `callback`: `callback(step, x, f, grad)` called on the host after every step (and
      at step 0) with concrete values; `x` and `grad` shaped like `x0`. Its return value
      is ignored; it cannot stop the solve (use `max_steps`, or a `gtol`).
    - `unravel`: the flat `x` back to `x0`'s pytree (for `callback`).
    """

    verbose: bool = eqx.field(default=False, static=True)
    callback: Optional[Callable] = eqx.field(default=None, static=True)
    unravel: Optional[Callable] = eqx.field(default=None, static=True)

    @property
    def active(self) -> bool:
        return self.verbose or self.callback is not None

    def member(self, x, state):
        """The batch member's index (see `_member`), computed once per solve: a member
        differs from the others by its `x0` or by what `f` depends on."""
        if not self.verbose:
            return None
        return _member(*jax.lax.stop_gradient((x[0], state.f)))

    def start(self, solver, member, x, state) -> None:
        """Report the start: the header, then step 0."""
        if self.verbose:
            label = solver.optimality_label(state)
            jax.debug.callback(lambda m: _print_header(label, m), member)
        self.step(solver, member, jnp.array(0, jnp.int32), x, state)

    def step(self, solver, member, n, x, state) -> None:
        """Report step `n`."""
        if self.verbose:
            label = solver.optimality_label(state)
            jax.debug.callback(
                lambda *a: _print_step(label, *a), member, n, state.f,
                solver.optimality_norm(state), state.alpha, state.ls_evals,
            )
        if self.callback is not None:
            unravel = self.unravel if self.unravel is not None else (lambda v: v)
            callback = self.callback
            jax.debug.callback(
                lambda n, x, f, g: _call_user(callback, n, x, f, g),
                n, unravel(x), state.f, unravel(state.g),
            )

    def end(self, solver, member, n, state, status, reason) -> None:
        if self.verbose:
            jax.debug.callback(
                _print_end, member, n, status, reason, state.f, solver.optimality_norm(state),
                state.num_fun_evals, state.num_hvp_evals,
            )


def _call_user(callback, n, x, f, g):
    callback(int(n), jax.tree.map(np.asarray, x), np.asarray(f), jax.tree.map(np.asarray, g))
