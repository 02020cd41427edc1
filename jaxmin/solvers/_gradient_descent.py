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
from .._solution import Status
from .._typing import Objective, ScalarLike, Vector
from ..linesearch import AbstractLineSearch
from ._base import AbstractSolver, AbstractState
from ._schedule import LearningRate, as_learning_rate, check_learning_rate, learning_rate_at
from ._search import check_options, gradient_terminate, must_stop, search_step, start_point


class _GradientDescentState(AbstractState):
    # at the current iterate
    f: Scalar
    g: Vector
    k: Int[Array, ""]  # steps taken: the schedule's argument
    flat_steps: Int[Array, ""]  # consecutive steps that left f unchanged (line search)
    # bookkeeping
    status: Int[Array, ""]
    alpha: Scalar
    ls_evals: Int[Array, ""]
    num_fun_evals: Int[Array, ""]
    num_hvp_evals: Int[Array, ""]


def take_step(fn: Objective, args: tuple, x: Vector, f: Scalar, g: Vector, x_new: Vector,
              status: Int[Array, ""]):
    """`(x, f, g, status)` after moving to `x_new`, which is kept only where `x_new`,
    `f` and `g` are finite: otherwise `x` stays and `status` becomes `NONFINITE`, so a
    diverging fixed step ends the solve at its last finite iterate."""
    f_new, g_new = jax.value_and_grad(fn)(x_new, *args)
    f_new = f_new.astype(x.dtype)
    finite = is_finite(x_new, f_new, g_new)
    keep = lambda new, old: jnp.where(finite, new, old)
    status = jnp.where(finite, status, Status.NONFINITE).astype(jnp.int32)
    return keep(x_new, x), keep(f_new, f), keep(g_new, g), status


def first_order_state(fn: Objective, x: Vector, args: tuple) -> dict:
    """The fields every first-order state starts with, at `x`."""
    f, g, status = start_point(fn, x, args)
    zero_i = jnp.array(0, jnp.int32)
    return {
        "f": f, "g": g, "k": zero_i, "status": status, "alpha": jnp.zeros((), x.dtype),
        "ls_evals": zero_i, "num_fun_evals": jnp.array(1, jnp.int32), "num_hvp_evals": zero_i,
    }


class GradientDescent(AbstractSolver[_GradientDescentState]):
    """Gradient descent, `x <- x - alpha_k g` (Nocedal & Wright §3.1).

    Without a line search `alpha_k` is the learning rate at step `k`: a number or a
    schedule `k -> alpha_k` (any callable, e.g. an optax schedule; `k` counts from 0).
    Each step costs one evaluation. A step to a point where f or g is NaN/inf is not
    taken and ends the solve with `NONFINITE`, so a learning rate too large for the
    problem stops at the last finite iterate instead of running on with NaNs.

    With a line search, the learning rate is the search's first trial step along
    `-g`; failures end the solve as in `LBFGS` (`STAGNATED`, `NONFINITE` or
    `LINESEARCH_FAILED`; there is no safer direction to retry).

    **Arguments:**

    - `learning_rate`: the step `alpha_k` (or first trial step): a positive number,
      an array, or a schedule.
    - `linesearch`: `None` for the fixed/scheduled step, or a `jm.linesearch` search.
    - `gtol`: stop when `max|g| <= gtol`.
    """

    learning_rate: LearningRate = eqx.field(converter=as_learning_rate)
    linesearch: Optional[AbstractLineSearch] = None
    gtol: ScalarLike = 1e-5

    def __check_init__(self):
        # a schedule may start at 0 (warm-up); a constant 0 never moves
        check_learning_rate(self, "learning_rate", self.learning_rate)
        check_options(self, self.gtol, self.linesearch)

    def init(self, fn, x, args):
        return _GradientDescentState(flat_steps=jnp.array(0, jnp.int32),
                                     **first_order_state(fn, x, args))

    def step(self, fn, x, state, args):
        alpha = learning_rate_at(self.learning_rate, state.k, x)
        if self.linesearch is None:
            x, f, g, status = take_step(fn, args, x, state.f, state.g, x - alpha * state.g,
                                        state.status)
            ls_evals, flat_steps = jnp.array(1, jnp.int32), state.flat_steps
        else:
            # search_step tries the unit step first: along p = -alpha g that is alpha
            step = search_step(self.linesearch, fn, args, x, state.f, state.g,
                               -alpha * state.g, jnp.inf, state.flat_steps)
            stop = must_stop(step, retry_possible=jnp.array(False))
            x, f, g, alpha = step.x, step.f, step.g, alpha * step.alpha
            status = jnp.where(stop, step.status, state.status)
            ls_evals, flat_steps = step.ls_evals, step.flat_steps
        new_state = _GradientDescentState(
            f=f, g=g, k=state.k + 1, flat_steps=flat_steps, status=status, alpha=alpha,
            ls_evals=ls_evals, num_fun_evals=state.num_fun_evals + ls_evals,
            num_hvp_evals=state.num_hvp_evals,
        )
        return x, new_state

    def terminate(self, state):
        return gradient_terminate(state, self.gtol)
