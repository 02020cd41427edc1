"""`run_solver`: the single `lax.while_loop` that drives every solver.

Besides stepping, the loop watches what needs the whole history (the per-step tests
live in `solvers._stopping`): progress (a solve that improves neither f nor its
optimality measure for `PATIENCE` steps has stalled), and divergence (f falling to
-inf, or a failing solve whose iterates ran off while the gradient never shrank).
"""

from typing import Any, NamedTuple

import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Scalar

from ._constraints import Constraints
from ._misc import eps, max_norm
from ._solution import Reason
from ._typing import Vector
from ._warm import continue_or_refresh, refreshed_state
from .solvers._stopping import PATIENCE, stall_reason, status_of

# reasons that end a solve in failure, which divergence may explain better
_FAILURES = (Reason.STALLED, Reason.HOVERING, Reason.LINESEARCH, Reason.NONFINITE_STEP, Reason.MAX_STEPS)


# at the step cap, this many steps without progress make the end a stall
_RECENT = 10


class Watch(NamedTuple):
    """What the loop tracks across steps, for the verdict at the end."""

    f0: Scalar  # f at x0
    x0_scale: Scalar  # max|x0|
    opt0: Scalar  # the optimality measure at x0
    best_f: Scalar
    best_opt: Scalar
    since: Int[Array, ""]  # steps since f or the optimality measure improved beyond rounding
    problem: Any = None  # the digest of the problem (`_warm.fingerprint`), for warm starts


class Carry(NamedTuple):
    """The loop carry: iterate, solver state, steps taken, done, and the watch."""

    x: Vector
    state: Any
    n: Int[Array, ""]
    done: Bool[Array, ""]
    watch: Watch


def _watch_update(watch: Watch, f, opt, like) -> Watch:
    better_f = jnp.isfinite(f) & (f < watch.best_f - 4 * eps(like) * jnp.abs(watch.best_f))
    better_opt = opt < (1 - 4 * eps(like)) * watch.best_opt
    return watch._replace(
        best_f=jnp.where(better_f, f, watch.best_f), best_opt=jnp.minimum(watch.best_opt, opt),
        since=jnp.where(better_f | better_opt, 0, watch.since + 1),
    )


def start(solver, fn, x0, args, constraints, max_steps, earlier=None, problem=None) -> Carry:
    """The carry at `x0`: the solver's initial state, or with `earlier` (a warm start,
    `_warm.Earlier`) the state it continues from; done already if the solver says so or
    `max_steps` is 0. `problem` is the problem's digest, kept for later warm starts."""

    def fresh():
        state = solver.init(fn, x0, args, constraints)
        f0, opt0 = state.f, solver.optimality_norm(state)
        return state, Watch(f0, max_norm(x0), opt0, f0, opt0, jnp.array(0, jnp.int32), problem)

    def refresh():
        state, watch = fresh()
        return refreshed_state(solver, state, earlier.state), watch

    if earlier is None:
        state, watch = fresh()
        n = jnp.array(0, jnp.int32)
    else:
        state, watch = continue_or_refresh(earlier, x0, problem, refresh)
        n = jnp.asarray(earlier.num_steps, jnp.int32)
    done, _ = solver.terminate(state)
    return Carry(x0, state, n, done | (max_steps <= 0), watch)


def advance(solver, fn, args, constraints, max_steps, monitor=None, member=None):
    """The loop body: one solver step, then the stopping tests; `monitor` reports it.
    `max_steps` caps the step count `n` of the carry (which a warm start continues)."""

    def body(carry: Carry) -> Carry:
        x, state = solver.step(fn, carry.x, carry.state, args, constraints)
        n = carry.n + 1
        if monitor is not None:
            monitor.step(solver, member, n, x, state)
        done, _ = solver.terminate(state)
        watch = _watch_update(carry.watch, state.f, solver.optimality_norm(state), x)
        done = done | (n >= max_steps) | (watch.since >= PATIENCE)
        return Carry(x, state, n, done, watch)

    return body


def run_solver(solver, fn, x0, args, max_steps, constraints=None, monitor=None, earlier=None,
               problem=None):
    """Run `solver` from `x0` until `terminate` says done, progress stops, or
    `max_steps` more steps; `constraints` (`None`: none) goes to every `init` and
    `step`; `earlier` (`_warm.Earlier`) warm-starts it; `problem` is its digest.

    Returns `(x, state, num_steps, status, reason, watch)`.
    """
    constraints = Constraints() if constraints is None else constraints
    carry = start(solver, fn, x0, args, constraints, max_steps, earlier, problem)
    max_steps = carry.n + max_steps
    member = None
    if monitor is not None and monitor.active:
        member = monitor.member(x0, carry.state)
        monitor.start(solver, member, x0, carry.state)
    else:
        monitor = None
    body = advance(solver, fn, args, constraints, max_steps, monitor, member)
    carry = lax.while_loop(lambda c: ~c.done, body, carry)
    reason = final_reason(solver, carry)
    status = status_of(reason)
    if monitor is not None:
        monitor.end(solver, member, carry.n, carry.state, status, reason)
    return carry.x, carry.state, carry.n, status, reason, carry.watch


def final_reason(solver, carry: Carry) -> Int[Array, ""]:
    """The solver's own verdict; where it had none, a stall (no progress for
    `PATIENCE` steps, or for the last `_RECENT` steps before the cap) or `MAX_STEPS`;
    `DIVERGED` for a fixed step that stalled above its start (learning rate) and for a
    failure that ran off towards -inf."""
    x, state, n, _, watch = carry
    f0, best_opt, opt0, since = watch.f0, watch.best_opt, watch.opt0, watch.since
    done, _, reason = solver.verdict(state)
    f, relative = state.f, solver.relative_optimality(x, state)
    hovered = stall_reason(relative, f, solver.tolerance_ftol(x), Reason.HOVERING)
    cut = jnp.where(since >= _RECENT, hovered, Reason.MAX_STEPS)
    reason = jnp.where(done, reason, cut)
    if solver.fixed_step():
        # a fixed step that stalls above the start is too long
        rose = (reason == Reason.HOVERING) & ~(f <= f0)
        reason = jnp.where(rose, Reason.LEARNING_RATE, reason)
    # divergence: f = -inf, or a failure whose f fell by more than its starting scale
    # while the iterates ran off (|x| beyond x0's scale / sqrt(eps)) or the optimality
    # measure never even halved in `PATIENCE` steps or more
    fell = f < f0 - (1 + jnp.abs(f0))
    ran_off = max_norm(x) >= (1 + watch.x0_scale) / jnp.sqrt(eps(x))
    never_shrank = (best_opt > 0.5 * opt0) & (n >= PATIENCE)
    failing = reason == Reason.PRECISION  # (a huge |f| passes the relative guard)
    for r in _FAILURES:
        failing = failing | (reason == r)
    unbounded = (f == -jnp.inf) | (failing & fell & (ran_off | never_shrank))
    return jnp.where(unbounded, Reason.UNBOUNDED, reason).astype(jnp.int32)
