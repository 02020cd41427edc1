"""Gradient descent: a fixed or scheduled step, or a line search along `-g`
(Nocedal & Wright §3.1; Cauchy 1847).

Notation: `x, f, g`; learning rate (step size) `alpha`; step counter `k` from 0.
`take_step` is shared by the fixed-step methods (`OptimisticGradient`, `Fromage`).
"""

from typing import Optional

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int, Scalar

from .._misc import is_finite
from .._solution import Reason
from .._typing import Objective, ScalarLike, Vector
from ..linesearch import AbstractLineSearch
from ._base import AbstractSolver, AbstractState
from ._schedule import LearningRate, as_learning_rate, check_learning_rate, learning_rate_at
from ._search import check_options, search_step, start_point
from ._stopping import keep_reason


class _GradientDescentState(AbstractState):
    # at the current iterate
    f: Scalar
    g: Vector
    k: Int[Array, ""]  # steps taken: the schedule's argument
    flat_steps: Int[Array, ""]  # consecutive steps that left f unchanged (line search)
    # bookkeeping
    reason: Int[Array, ""]
    alpha: Scalar
    ls_evals: Int[Array, ""]
    num_fun_evals: Int[Array, ""]
    num_hvp_evals: Int[Array, ""]


def take_step(fn: Objective, args: tuple, x: Vector, f: Scalar, g: Vector, x_new: Vector,
              reason: Int[Array, ""]):
    """`(x, f, g, reason)` after moving to `x_new`, which is kept only where `x_new`,
    `f` and `g` are finite: otherwise `x` stays and the solve ends `DIVERGED` (reason
    `LEARNING_RATE`: a fixed step that overflows is too long; `NONFINITE` where f is
    NaN there, outside its domain), at its last finite iterate."""
    f_new, g_new = jax.value_and_grad(fn)(x_new, *args)
    f_new = f_new.astype(x.dtype)
    finite = is_finite(x_new, f_new, g_new)
    keep = lambda new, old: jnp.where(finite, new, old)
    # an overflow (f -> +inf, or a finite f above the last) is a step too long; a NaN
    # f is a point outside the objective's domain
    overflow = (f_new == jnp.inf) | ~is_finite(x_new) | (jnp.isfinite(f_new) & (f_new > f))
    blew_up = jnp.where(overflow, Reason.LEARNING_RATE, Reason.NONFINITE_STEP)
    reason = keep_reason(reason, jnp.where(finite, Reason.RUNNING, blew_up))
    return keep(x_new, x), keep(f_new, f), keep(g_new, g), reason


def first_order_state(fn: Objective, x: Vector, args: tuple) -> dict:
    """The fields every first-order state starts with, at `x`."""
    f, g, reason = start_point(fn, x, args)
    zero_i = jnp.array(0, jnp.int32)
    return {
        "f": f, "g": g, "k": zero_i, "reason": reason, "alpha": jnp.zeros((), x.dtype),
        "ls_evals": zero_i, "num_fun_evals": jnp.array(1, jnp.int32), "num_hvp_evals": zero_i,
    }


class GradientDescent(AbstractSolver[_GradientDescentState]):
    """Gradient descent, `x <- x - alpha_k g` (Nocedal & Wright §3.1).

    Without a line search `alpha_k` is the learning rate at step `k`: a number or a
    schedule `k -> alpha_k` (any callable, e.g. an optax schedule; `k` counts from 0).
    Each step costs one evaluation. A step to a point where f or g is NaN/inf is not
    taken: a learning rate too large for the problem stops at the last finite iterate
    (`DIVERGED`, naming the learning rate; `NONFINITE` where f is NaN there) instead
    of running on with NaNs. A step that no longer improves f or the gradient
    for many steps (a constant step circling a minimiser) ends the solve as a stall.

    With a line search, the learning rate is the search's first trial step along
    `-g`; failures end the solve as in `LBFGS` (converged at the attainable
    precision, `STAGNATED`, `NONFINITE` or `LINESEARCH_FAILED`; there is no safer
    direction to retry).

    Choose it to reproduce a training loop with a learning rate or schedule you
    control, or as a baseline; for plain minimisation `LBFGS` needs far fewer steps.

    **Arguments:**

    - `learning_rate` (required; units of x per unit of gradient): the step `alpha_k`
      (or the first trial step of the line search): a positive number, an array, or a
      schedule.
    - `linesearch` (default `None`): `None` for the fixed/scheduled step, or a
      `jm.linesearch` search.
    - `gtol` (default `1e-5`, in the units of the gradient: f per unit of x): stop when
      `max|g| <= gtol`.
    - `ftol` (default `None`, meaning `eps / 4` of the solve's dtype; relative,
      dimensionless): relative-decrease test (line-search steps) and
      precision level of a stall, as in `LBFGS`.

    **Example:**

    ```python
    def loss(w, X, y):
        return jnp.mean((X @ w - y) ** 2)

    X = jax.random.normal(jax.random.key(0), (200, 5))
    y = X @ jnp.arange(1.0, 6.0)
    sol = jm.minimize(loss, jnp.zeros(5), jm.GradientDescent(0.1, gtol=1e-4), args=(X, y))
    decaying = jm.GradientDescent(lambda k: 0.2 / (1 + 0.01 * k), gtol=1e-4)
    ```
    """

    learning_rate: LearningRate = eqx.field(converter=as_learning_rate)
    linesearch: Optional[AbstractLineSearch] = None
    gtol: ScalarLike = 1e-5
    ftol: Optional[ScalarLike] = None

    def __check_init__(self):
        # a schedule may start at 0 (warm-up); a constant 0 never moves
        check_learning_rate(self, "learning_rate", self.learning_rate)
        check_options(self, self.gtol, self.linesearch)

    def fixed_step(self) -> bool:
        return self.linesearch is None

    def init(self, fn, x, args, constraints=None):
        return _GradientDescentState(flat_steps=jnp.array(0, jnp.int32),
                                     **first_order_state(fn, x, args))

    def warm_state(self, fresh, old):
        """A warm start continues the step counter (and so the learning-rate schedule)."""
        return eqx.tree_at(lambda s: s.k, fresh, old.k)

    def step(self, fn, x, state, args, constraints=None):
        alpha = learning_rate_at(self.learning_rate, state.k, x)
        if self.linesearch is None:
            x, f, g, reason = take_step(fn, args, x, state.f, state.g, x - alpha * state.g,
                                        state.reason)
            ls_evals, flat_steps = jnp.array(1, jnp.int32), state.flat_steps
        else:
            # search_step tries the unit step first: along p = -alpha g that is alpha
            step = search_step(self.linesearch, fn, args, x, state.f, state.g,
                               -alpha * state.g, jnp.inf, state.flat_steps,
                               retry_possible=jnp.array(False), ftol=self.tolerance_ftol(x))
            x, f, g, alpha = step.x, step.f, step.g, alpha * step.alpha
            reason = keep_reason(state.reason, step.reason)
            ls_evals, flat_steps = step.ls_evals, step.flat_steps
        new_state = _GradientDescentState(
            f=f, g=g, k=state.k + 1, flat_steps=flat_steps, reason=reason, alpha=alpha,
            ls_evals=ls_evals, num_fun_evals=state.num_fun_evals + ls_evals,
            num_hvp_evals=state.num_hvp_evals,
        )
        return x, new_state
