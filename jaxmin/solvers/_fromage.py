"""Fromage: Frobenius-matched gradient descent (Bernstein, Vahdat, Yue & Liu 2020,
"On the distance between two neural networks and the stability of learning",
NeurIPS).

Notation: `x, f, g`; learning rate `eta`; step counter `k` from 0.
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


class _FromageState(AbstractState):
    # at the current iterate
    f: Scalar
    g: Vector
    k: Int[Array, ""]  # steps taken: the schedule's argument
    # bookkeeping
    reason: Int[Array, ""]
    alpha: Scalar
    ls_evals: Int[Array, ""]
    num_fun_evals: Int[Array, ""]
    num_hvp_evals: Int[Array, ""]


def fromage_update(x: Vector, g: Vector, eta: Scalar) -> Vector:
    """`(x - eta |x| / |g| g) / sqrt(1 + eta^2)`, with `eta` the learning rate's value.

    Where `|x| = 0` or `|g| = 0` the relative step is undefined and the step is the
    plain `eta g` (as in the authors' reference implementation), so no NaN arises.
    """
    x_norm, g_norm = jnp.linalg.norm(x), jnp.linalg.norm(g)
    relative = (x_norm > 0) & (g_norm > 0)
    scale = jnp.where(relative, x_norm / jnp.where(relative, g_norm, 1.0), 1.0)
    return (x - (eta * scale) * g) / jnp.sqrt(1 + eta**2)


class Fromage(AbstractSolver[_FromageState]):
    """Fromage (Bernstein et al. 2020): each step moves `x` by the fraction
    `eta` of its own norm, `x <- (x - eta |x| / |g| g) / sqrt(1 + eta^2)`; the
    division keeps `|x|` from growing (to first order in `eta`).

    The paper applies the update per layer (per weight matrix). A solver sees the
    flattened `x`, so here the whole of `x` is one layer: one `|x|` and one `|g|`.
    For per-layer steps, minimise over one layer at a time or use an optimiser that
    sees the pytree.

    Every step has relative length `eta`, however small `g` is, so with a constant
    `eta` the iterates circle a minimiser at distance ~ `eta |x|`; reaching `gtol`
    needs a decaying schedule. `eta` and `eta^2` are computed from the schedule's
    value at step `k`. A step to a NaN/inf point is not taken and ends the solve
    `DIVERGED` (learning rate too large).

    Choose it to reproduce Fromage's scale-relative steps, e.g. for weights whose
    norm sets their scale; it needs a decaying schedule to converge.

    **Arguments:**

    - `learning_rate` (required; dimensionless: a fraction of `|x|`): `eta`, a
      positive number, an array or a schedule `k -> eta_k`.
    - `gtol` (default `1e-5`, in the units of the gradient: f per unit of x): stop when
      `max|g| <= gtol`.
    - `ftol` (default `None`, meaning `eps / 4` of the solve's dtype; relative,
      dimensionless): the precision level a stalled solve is judged by,
      as in `LBFGS`.

    **Example:**

    ```python
    schedule = lambda k: 0.05 * 0.8 ** (k / 50)
    solver = jm.Fromage(schedule, gtol=1e-3)
    ```
    """

    learning_rate: LearningRate = eqx.field(converter=as_learning_rate)
    gtol: ScalarLike = 1e-5
    ftol: Optional[ScalarLike] = None

    def __check_init__(self):
        check_learning_rate(self, "learning_rate", self.learning_rate)
        check_options(self, self.gtol, None)

    def fixed_step(self) -> bool:
        return True

    def init(self, fn, x, args, constraints=None):
        return _FromageState(**first_order_state(fn, x, args))

    def warm_state(self, fresh, old):
        """A warm start continues the step counter (and so the learning-rate schedule)."""
        return eqx.tree_at(lambda s: s.k, fresh, old.k)

    def step(self, fn, x, state, args, constraints=None):
        eta = learning_rate_at(self.learning_rate, state.k, x)
        x_new = fromage_update(x, state.g, eta)
        x_new, f, g, reason = take_step(fn, args, x, state.f, state.g, x_new, state.reason)
        one = jnp.array(1, jnp.int32)
        new_state = _FromageState(
            f=f, g=g, k=state.k + 1, reason=reason, alpha=eta, ls_evals=one,
            num_fun_evals=state.num_fun_evals + one, num_hvp_evals=state.num_hvp_evals,
        )
        return x_new, new_state
