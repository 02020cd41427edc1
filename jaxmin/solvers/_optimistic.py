"""Optimistic gradient descent (Popov 1980; Rakhlin & Sridharan 2013; Daskalakis,
Ilyas, Syrgkanis & Zeng 2018, "Training GANs with optimism").

Notation: `x, f, g`; learning rate `alpha`; optimism `beta`; step counter `k` from 0.
"""

from typing import Optional

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Int, Scalar

from .._typing import ScalarLike, Vector
from ._base import AbstractSolver, AbstractState
from ._gradient_descent import first_order_state, take_step
from ._schedule import LearningRate, as_learning_rate, check_learning_rate, learning_rate_at
from ._search import check_options


class _OptimisticState(AbstractState):
    # at the current iterate
    f: Scalar
    g: Vector
    g_prev: Vector  # the gradient at the previous iterate (g itself before step 1)
    k: Int[Array, ""]  # steps taken: 0 before the first, which has no previous gradient
    # bookkeeping
    reason: Int[Array, ""]
    alpha: Scalar
    ls_evals: Int[Array, ""]
    num_fun_evals: Int[Array, ""]
    num_hvp_evals: Int[Array, ""]


class OptimisticGradient(AbstractSolver[_OptimisticState]):
    """Optimistic gradient descent: `x <- x - [(alpha + beta) g_k - beta g_(k-1)]`,
    a gradient step plus a correction `beta (g_k - g_(k-1))` that anticipates the
    next gradient (Daskalakis et al. 2018, with separate `alpha`, `beta`).

    The first step has no previous gradient and is exactly `x_1 = x_0 - alpha g_0`:
    the state counts steps, rather than standing in a zero "previous gradient", which
    would make the first step `(alpha + beta) g_0`, too long by `beta g_0`.

    On a quadratic with Hessian eigenvalues `lam`, the iteration is stable where
    `beta lam < 1` and `(alpha + 2 beta) lam < 2` (Jury's criterion for its
    characteristic polynomial): for minimisation, where the gradient field is
    symmetric, optimism narrows plain gradient descent's range `alpha lam < 2`; its
    gains are on rotational (min-max) fields. As in `GradientDescent`, a step to a
    NaN/inf point is not taken and ends the solve `DIVERGED` (learning rate too large).

    Choose it for rotational gradient fields (min-max and game-like problems written
    as one vector field); for plain minimisation `GradientDescent` or `LBFGS` do
    better.

    **Arguments:**

    - `learning_rate` (required; units of x per unit of gradient): `alpha`, a positive
      number, an array or a schedule `k -> alpha_k`.
    - `optimism` (required; same units): `beta >= 0`, likewise (`beta = 0` is
      gradient descent).
    - `gtol` (default `1e-5`, in the units of the gradient: f per unit of x): stop when
      `max|g| <= gtol`.
    - `ftol` (default `None`, meaning `eps / 4` of the solve's dtype; relative,
      dimensionless): the precision level a stalled solve is judged by,
      as in `LBFGS`.

    **Example:**

    ```python
    solver = jm.OptimisticGradient(0.1, optimism=0.05, gtol=1e-4)
    ```
    """

    learning_rate: LearningRate = eqx.field(converter=as_learning_rate)
    optimism: LearningRate = eqx.field(converter=as_learning_rate)
    gtol: ScalarLike = 1e-5
    ftol: Optional[ScalarLike] = None

    def __check_init__(self):
        check_learning_rate(self, "learning_rate", self.learning_rate)
        check_learning_rate(self, "optimism", self.optimism, allow_zero=True)
        check_options(self, self.gtol, None)

    def fixed_step(self) -> bool:
        return True

    def init(self, fn, x, args, constraints=None):
        fields = first_order_state(fn, x, args)
        return _OptimisticState(g_prev=fields["g"], **fields)

    def warm_state(self, fresh, old):
        """A warm start continues the step counter (and so the learning-rate schedule)."""
        return eqx.tree_at(lambda s: s.k, fresh, old.k)

    def step(self, fn, x, state, args, constraints=None):
        alpha = learning_rate_at(self.learning_rate, state.k, x)
        beta = learning_rate_at(self.optimism, state.k, x)
        g = state.g
        d = jnp.where(state.k == 0, alpha * g, (alpha + beta) * g - beta * state.g_prev)
        x_new, f, g_new, reason = take_step(fn, args, x, state.f, g, x - d, state.reason)
        one = jnp.array(1, jnp.int32)
        new_state = _OptimisticState(
            f=f, g=g_new, g_prev=g, k=state.k + 1, reason=reason, alpha=alpha,
            ls_evals=one, num_fun_evals=state.num_fun_evals + one,
            num_hvp_evals=state.num_hvp_evals,
        )
        return x_new, new_state
