"""SQP's state: the iterate's `_Point`, the last QP's step, multipliers and active sets,
the Lagrangian Hessian and penalties, the progress watch (`_Watch`) and where
feasibility restoration stands (`_Phase`); and the one packing of the KKT unknowns
`z = [x, lam_eq, lam_in, w]` that both implicit hooks use.
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, Scalar

from .._typing import Vector
from ._base import AbstractState
from ._sqp_point import _Point
from ._sqp_subproblem import QPStep


class _Watch(eqx.Module):
    """The progress watch: the best f (at a violation no worse than the best),
    violation, squared violation and KKT residual seen, and the steps since one
    improved."""

    best_f: Scalar
    best_violation: Scalar
    best_v2: Scalar
    best_kkt: Scalar
    since: Int[Array, ""]


class _Phase(eqx.Module):
    """Where feasibility restoration stands (see the class docstring).

    - `restore_next`: the next step is to be a feasibility step.
    - `restoring`: in the restoration phase, entered at squared violation `v2_entry`.
    - `v2_cap`: the squared violation where restoration last ended: steps stay below.
    - `damping`: the feasibility step's Levenberg-Marquardt parameter (relative).
    - `certified`: `x` is (was) a stationary point of the violation above `ctol`.
    """

    restore_next: Bool[Array, ""]
    restoring: Bool[Array, ""]
    v2_entry: Scalar
    v2_cap: Scalar
    damping: Scalar
    certified: Bool[Array, ""]


class _SQPState(AbstractState):
    point: _Point  # f, g, constraints and Jacobians at the current iterate
    # the last QP: step, multipliers (lam_eq, lam_in; bound multipliers w = w_lower -
    # w_upper), active sets (implicit differentiation uses them; the next QP starts
    # from them)
    qp: QPStep
    # the damped-BFGS Lagrangian Hessian and the penalty parameters
    B: Float[Array, "n n"]
    num_updates: Int[Array, ""]
    nu: Float[Array, " m"]  # one merit penalty per constraint, equalities first
    rho: Scalar
    # convergence measures at the current iterate
    kkt: Scalar
    violation: Scalar
    flat_steps: Int[Array, ""]
    unchanged: Bool[Array, ""]  # the last step changed the merit function within its rounding
    pending: Bool[Array, ""]  # a PRECISION stop this step certifies (`precision_certificate`)
    watch: _Watch
    phase: _Phase
    # bookkeeping
    reason: Int[Array, ""]
    alpha: Scalar
    ls_evals: Int[Array, ""]
    num_fun_evals: Int[Array, ""]
    num_hvp_evals: Int[Array, ""]

    @property
    def f(self):
        return self.point.f

    @property
    def g(self):
        return self.point.g

    @property
    def multipliers(self):
        """`(lam_eq, lam_in)` of the last QP."""
        return self.qp.lam_eq, self.qp.lam_in

    @property
    def w(self):
        """The bound multipliers `w = w_lower - w_upper` of the last QP."""
        return self.qp.w


def pack_kkt(x, lam_eq, lam_in, w) -> Vector:
    """`z = [x, lam_eq, lam_in, w]`: the unknowns of the KKT system."""
    return jnp.concatenate([x, lam_eq, lam_in, w])


def unpack_kkt(z: Vector, n: int, me: int, mi: int):
    """`(x, lam_eq, lam_in, w)` from `z = pack_kkt(...)`."""
    return z[:n], z[n:n + me], z[n + me:n + me + mi], z[n + me + mi:]

