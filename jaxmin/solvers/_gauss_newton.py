"""Gauss–Newton with a line search (Nocedal & Wright §10.3; Dennis & Schnabel 1983,
§10.2 "damped Gauss–Newton").

Each step solves the linear least-squares problem `min |J p + r|` (the Gauss–Newton
equations `J^T J p = -J^T r`) and searches along `p` on `f = |r|^2 / 2`.

Notation: residuals `r`, Jacobian `J`, `f`, `g = J^T r`, direction `p`, step `alpha`.
"""

from typing import Optional

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, Scalar

from .._misc import eps, is_finite
from .._typing import ScalarLike, Vector
from ..linear import CG
from ..linesearch import AbstractLineSearch, Backtracking
from ._base import AbstractState
from ._residuals import (
    AbstractLeastSquaresSolver,
    gauss_newton_operator,
    half_sum_of_squares,
    residuals_and_gradient,
    residuals_and_jacobian,
)
from ._search import check_options, search_step
from ._stopping import keep_reason, start_reason


class _GNState(AbstractState):
    # at the current iterate
    f: Scalar
    g: Vector  # J^T r
    residuals: Vector
    jac: Optional[Float[Array, "m n"]]  # None when matrix-free
    flat_steps: Int[Array, ""]
    # bookkeeping
    reason: Int[Array, ""]
    alpha: Scalar
    ls_evals: Int[Array, ""]
    num_fun_evals: Int[Array, ""]  # evaluations of the residuals (in the line search)
    num_jac_evals: Int[Array, ""]  # Jacobians formed (or linearisations, matrix-free)
    num_hvp_evals: Int[Array, ""]  # products with J^T J (matrix-free)


def gauss_newton_direction(J: Float[Array, "m n"], r: Vector) -> Vector:
    """The minimum-norm solution of `min |J p + r|` (singular values below
    `eps max(m, n) sigma_max` count as zero)."""
    U, sigma, Vt = jnp.linalg.svd(J, full_matrices=False)
    nonzero = sigma > eps(J) * max(J.shape) * jnp.max(sigma, initial=0.0)
    c = jnp.where(nonzero, (U.T @ r) / jnp.where(nonzero, sigma, 1.0), 0.0)
    return -(Vt.T @ c)


class GaussNewton(AbstractLeastSquaresSolver):
    """Gauss–Newton with a line search for `min |r(x)|^2 / 2` (N&W §10.3): the
    direction solves `min |J p + r|` (minimum norm where `J` is rank-deficient; CG on
    `J^T J p = -J^T r` when matrix-free), then a line search on f. Use it with
    `jm.least_squares(..., solver=jm.GaussNewton())`.

    Cheaper per step than `LevenbergMarquardt` and quadratically convergent on
    zero-residual problems with a well-conditioned `J`; on large-residual or
    rank-deficient problems prefer `LevenbergMarquardt`.

    **Arguments:**

    - `linesearch` (default `jm.linesearch.Backtracking()`): an `AbstractLineSearch`
      (the full Gauss–Newton step is tried first).
    - `gtol` (default `1e-5`, in the units of `J^T r`): stop when `max|J^T r| <= gtol`.
    - `ftol` (default `None`, meaning `eps / 4` of the dtype; relative):
      relative-decrease test and precision level.
    - `matrix_free` (default `None`: by size): `True` or `False`, as for
      `LevenbergMarquardt`.
    - `cg` (default `jm.linear.CG(rtol=1e-6)`): the CG of the matrix-free direction.

    **Example:**

    ```python
    def residuals(theta, t, y):   # model minus data
        return theta[0] * jnp.exp(-theta[1] * t) - y

    t = jnp.linspace(0.0, 3.0, 20)
    y = 2.0 * jnp.exp(-0.7 * t)
    sol = jm.least_squares(residuals, jnp.array([1.0, 1.0]), jm.GaussNewton(), args=(t, y))
    ```
    """

    linesearch: AbstractLineSearch = Backtracking()
    gtol: ScalarLike = 1e-5
    ftol: Optional[ScalarLike] = None
    matrix_free: Optional[bool] = eqx.field(default=None, static=True)
    cg: CG = CG(rtol=1e-6)

    def __check_init__(self):
        check_options(self, self.gtol, self.linesearch)

    def init(self, fn, x, args, constraints=None):
        del constraints
        r, J, g = self._linearise(fn, x, args)
        f = half_sum_of_squares(r)
        zero, one = jnp.array(0, jnp.int32), jnp.array(1, jnp.int32)
        return _GNState(
            f=f, g=g, residuals=r, jac=J, flat_steps=zero, reason=start_reason(is_finite(x, f, g)),
            alpha=jnp.zeros((), x.dtype), ls_evals=zero, num_fun_evals=one, num_jac_evals=one,
            num_hvp_evals=zero,
        )

    def _linearise(self, fn, x, args):
        """`(r, J, g)` at `x` (`J` is None when matrix-free)."""
        if self.dense(x):
            r, J = residuals_and_jacobian(fn, x, args)
            return r, J, J.T @ r
        r, g = residuals_and_gradient(fn, x, args)
        return r, None, g

    def _direction(self, fn, x, state, args):
        """`(p, |J p|^2, products with J^T J)`."""
        if state.jac is not None:
            p = gauss_newton_direction(state.jac, state.residuals)
            Jp = state.jac @ p
            return p, jnp.dot(Jp, Jp), jnp.array(0, jnp.int32)
        _, jvp, vjp = gauss_newton_operator(fn, x, args)
        solved = self.cg.solve(lambda v: vjp(jvp(v)), -state.g)
        p = jnp.where(jnp.all(jnp.isfinite(solved.x)), solved.x, -state.g)
        Jp = jvp(p)
        return p, jnp.dot(Jp, Jp), solved.num_steps + 1

    def step(self, fn, x, state, args, constraints=None):
        del constraints
        p, Jp_sq, products = self._direction(fn, x, state, args)
        # a direction that lost descent to rounding: steepest descent instead
        descent = jnp.dot(state.g, p) < 0
        p = jnp.where(descent, p, -state.g)
        objective = lambda z, *a: half_sum_of_squares(fn(z, *a))  # noqa: E731
        step = search_step(self.linesearch, objective, args, x, state.f, state.g, p,
                           predicted=jnp.where(descent, 0.5 * Jp_sq, jnp.inf),
                           flat_steps=state.flat_steps, retry_possible=jnp.array(False),
                           ftol=self.tolerance_ftol(x))
        r, J, g = self._linearise(fn, step.x, args)
        new_state = _GNState(
            f=half_sum_of_squares(r), g=g, residuals=r, jac=J, flat_steps=step.flat_steps,
            reason=keep_reason(state.reason, step.reason), alpha=step.alpha, ls_evals=step.ls_evals,
            num_fun_evals=state.num_fun_evals + step.ls_evals, num_jac_evals=state.num_jac_evals + 1,
            num_hvp_evals=state.num_hvp_evals + products,
        )
        return step.x, new_state
