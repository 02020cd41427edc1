"""What the least-squares solvers share: `AbstractLeastSquaresSolver` and the
evaluations of the residuals `r(x)` and their Jacobian `J`.

A least-squares solver is handed the residual function `fn(x, *args) -> r` (a flat
vector of `m` residuals) instead of an objective; the objective it minimises is
`f = |r|^2 / 2`, with gradient `g = J^T r`. Everything else (the driver loop, the
stopping rules, implicit differentiation) is `minimize`'s.

Notation (Nocedal & Wright ch. 10): residuals `r`, Jacobian `J` (`m x n`), `f`, `g`.
"""

from typing import ClassVar, Optional

import equinox as eqx
import jax
import jax.numpy as jnp

from .._typing import Vector
from ._base import AbstractSolver

# Jacobians are formed densely up to this many unknowns (`matrix_free=None`)
DENSE_MAX_N = 500


def half_sum_of_squares(r: Vector):
    """`f = |r|^2 / 2`."""
    return 0.5 * jnp.dot(r, r)


class AbstractLeastSquaresSolver(AbstractSolver):
    """A solver of `min |r(x)|^2 / 2` that is handed the residual function `fn(x, *args)
    -> r` (flat, in x's dtype) where other solvers get the objective; run it with
    `jm.least_squares`.

    Its state carries, besides `f` and `g = J^T r`, the residuals `residuals` at the
    iterate and, where the Jacobian is formed densely, the Jacobian `jac`.

    Subclasses have the field `matrix_free`: `None` forms `J` densely (forward mode
    for `m >= n`, reverse mode otherwise) up to `DENSE_MAX_N` unknowns and works
    matrix-free beyond (`J v` and `J^T u` by `jax.linearize` and its transpose, CG on
    `J^T J`); `True` or `False` forces one or the other.
    """

    matrix_free: eqx.AbstractVar[Optional[bool]]
    takes_residuals: ClassVar[bool] = True

    def objective(self, fn, x, args):
        return half_sum_of_squares(fn(x, *args))

    def implicit_system(self, x, state, fn, args, constraints):
        # the normal equations J^T r = 0: the gradient of |r|^2 / 2
        del state, constraints
        return x, lambda z, fn, args, constraints: jax.grad(lambda z: half_sum_of_squares(fn(z, *args)))(z)

    def dense(self, x: Vector) -> bool:
        """Whether the Jacobian is formed densely for unknowns shaped like `x` (static)."""
        if self.matrix_free is None:
            return x.shape[0] <= DENSE_MAX_N
        return not self.matrix_free


def residuals_and_jacobian(fn, x: Vector, args: tuple):
    """`(r, J)` at `x` in one linearisation: forward mode (`n` Jacobian-vector
    products) when `m >= n`, reverse mode (`m` vector-Jacobian products) otherwise."""
    m = jax.eval_shape(fn, x, *args).shape[0]
    jacobian = jax.jacfwd if m >= x.shape[0] else jax.jacrev
    J, r = jacobian(lambda z: _with_aux(fn, z, args), has_aux=True)(x)
    return r, J


def _with_aux(fn, z, args):
    r = fn(z, *args)
    return r, r


def residuals_and_gradient(fn, x: Vector, args: tuple):
    """`(r, g = J^T r)` at `x` by one reverse pass (matrix-free)."""
    r, vjp = jax.vjp(lambda z: fn(z, *args), x)
    return r, vjp(r)[0]


def gauss_newton_operator(fn, x: Vector, args: tuple):
    """`(r, J v, J^T u)` at `x` without forming `J` (`jax.linearize` and its transpose):
    `J^T J v` is then one forward and one reverse product."""
    r, jvp = jax.linearize(lambda z: fn(z, *args), x)
    transpose = jax.linear_transpose(jvp, x)
    return r, jvp, lambda u: transpose(u)[0]
