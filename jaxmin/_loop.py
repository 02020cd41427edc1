"""`run_solver`: the single `lax.while_loop` that drives every solver.

Besides stepping, the loop watches what needs the whole history (the per-step tests
live in `solvers._stopping`): progress (a solve that improves neither f nor its
optimality measure for `PATIENCE` steps has stalled), and divergence (f falling to
-inf, or a failing solve whose iterates ran off while the gradient never shrank).
"""

import functools

import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np

from ._misc import eps, max_norm
from ._solution import Reason, Status
from .solvers._stopping import PATIENCE, stall_reason, status_of

# reasons that end a solve in failure, which divergence may explain better
_FAILURES = (Reason.STALLED, Reason.HOVERING, Reason.LINESEARCH, Reason.NONFINITE_STEP, Reason.MAX_STEPS)


def _print_progress(label, n, f, gnorm, alpha, ls_evals):
    # runs on the host; values may be batched under vmap, so format elementwise
    fmt = lambda v, spec: np.array2string(np.asarray(v), formatter={"all": lambda e: format(e, spec)})
    print(
        f"step {fmt(n, 'd')}  f {fmt(f, '.9e')}  {label} {fmt(gnorm, '.3e')}  "
        f"alpha {fmt(alpha, '.3e')}  ls_evals {fmt(ls_evals, 'd')}",
        flush=True,
    )


# at the step cap, this many steps without progress make the end a stall
_RECENT = 10


def _watch_start(f, opt):
    """What the loop tracks across steps: `(best f, best optimality, optimality at x0,
    steps since either improved beyond rounding)`."""
    return f, opt, opt, jnp.array(0, jnp.int32)


def _watch_update(watch, f, opt, like):
    best_f, best_opt, opt0, since = watch
    better_f = jnp.isfinite(f) & (f < best_f - 4 * eps(like) * jnp.abs(best_f))
    better_opt = opt < (1 - 4 * eps(like)) * best_opt
    return (jnp.where(better_f, f, best_f), jnp.minimum(best_opt, opt), opt0,
            jnp.where(better_f | better_opt, 0, since + 1))


def run_solver(solver, fn, x0, args, max_steps, verbose=False, constraints=None):
    """Run `solver` from `x0` until `terminate` says done, progress stops, or
    `max_steps` steps.

    `constraints` (a `Constraints`, or `None`) is passed on to `init` and `step` only
    when present, so unconstrained solvers never see it.

    Returns `(x, state, num_steps, status, reason)`.
    """

    def cond(carry):
        return ~carry[3]

    def body(carry):
        x, state, n, _, watch = carry
        x, state = solver.step(fn, x, state, args, *extra)
        n = n + 1
        opt = solver.optimality_norm(state)
        if verbose:
            jax.debug.callback(
                functools.partial(_print_progress, solver.optimality_label(state)), n, state.f, opt,
                state.alpha, state.ls_evals,
            )
        done, _ = solver.terminate(state)
        watch = _watch_update(watch, state.f, opt, x)
        return x, state, n, done | (n >= max_steps) | (watch[3] >= PATIENCE), watch

    extra = () if constraints is None else (constraints,)
    state = solver.init(fn, x0, args, *extra)
    done, _ = solver.terminate(state)
    n0 = jnp.array(0, jnp.int32)
    f0, opt0 = state.f, solver.optimality_norm(state)
    start = (x0, state, n0, done | (max_steps <= 0), _watch_start(f0, opt0))
    x, state, n, _, watch = lax.while_loop(cond, body, start)
    reason = _final_reason(solver, state, x, x0, f0, watch, n)
    return x, state, n, status_of(reason), reason


def _final_reason(solver, state, x, x0, f0, watch, n):
    """The solver's own verdict; where it had none, a stall (no progress for
    `PATIENCE` steps, or for the last `_RECENT` steps before the cap) or `MAX_STEPS`;
    `DIVERGED` for a fixed step that stalled above its start (learning rate) and for a
    failure that ran off towards -inf."""
    done, _, reason = solver.verdict(state)
    _, best_opt, opt0, since = watch
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
    ran_off = max_norm(x) >= (1 + max_norm(x0)) / jnp.sqrt(eps(x))
    never_shrank = (best_opt > 0.5 * opt0) & (n >= PATIENCE)
    failing = reason == Reason.PRECISION  # (a huge |f| passes the relative guard)
    for r in _FAILURES:
        failing = failing | (reason == r)
    unbounded = (f == -jnp.inf) | (failing & fell & (ran_off | never_shrank))
    return jnp.where(unbounded, Reason.UNBOUNDED, reason).astype(jnp.int32)
