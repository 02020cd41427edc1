"""The first-order (KKT) conditions at a point, from scratch (Nocedal & Wright ch. 12).

For `min f(x)` s.t. `c_eq(x) = 0`, `c_in(x) >= 0`, `lower <= x <= upper`, with the
Lagrangian `L = f - lam_eq . c_eq - lam_in . c_in` (N&W eq. 12.33), a KKT point has

    grad f = J_eq^T lam_eq + J_in^T lam_in + w        (stationarity, N&W 12.34a)
    c_eq = 0, c_in >= 0, lower <= x <= upper         (feasibility, 12.34b-c)
    lam_in >= 0; w >= 0 at an active lower bound,
    w <= 0 at an active upper bound, w = 0 off them    (signs, 12.34d)
    lam_in_i c_in_i = 0, w_i (x_i - bound_i) = 0      (complementarity, 12.34e)

with `w = w_lower - w_upper` the bound multipliers (jaxmin's SQP convention). Bound
constraints are handled as coordinates: an active bound fixes its coordinate, the
other constraints' rows are restricted to the free coordinates, and `w` is whatever
stationarity leaves on the fixed ones.

Multipliers missing from the solver are estimated by least squares on the active set,
`min || F (grad f - A^T lam) ||` with `A` the active rows (N&W eq. 18.20, the
"least-squares multipliers"); under LICQ they are the unique KKT multipliers, so a
negative one means that the point is not a minimiser.
"""

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .._typing import Vector


def active_rows(J_eq, J_in, act_in, free) -> Float[Array, "m n"]:
    """The equality rows and the active inequality rows (others zero), restricted to
    the free coordinates."""
    rows = jnp.concatenate([J_eq, jnp.where(act_in[:, None], J_in, 0.0)], axis=0)
    return jnp.where(free[None, :], rows, 0.0)


def row_space(A: Float[Array, "m n"]):
    """`(U, s, Vt, keep)`: A's thin SVD and the singular values above its rank
    tolerance (`max(m, n) eps s_max`, as `numpy.linalg.matrix_rank`)."""
    U, s, Vt = jnp.linalg.svd(A, full_matrices=False)
    eps = jnp.finfo(A.dtype).eps
    keep = s > max(A.shape) * eps * jnp.max(s, initial=0.0)
    return U, s, Vt, keep


def least_squares_multipliers(g: Vector, svd, free: Bool[Array, " n"]):
    """The minimum-norm `lam` minimising `|| F g - A^T lam ||` from `A`'s SVD."""
    U, s, Vt, keep = svd
    coef = jnp.where(keep, (Vt @ jnp.where(free, g, 0.0)) / jnp.where(keep, s, 1.0), 0.0)
    return U @ coef


def null_space_projector(svd, free: Bool[Array, " n"]):
    """`v -> P v`, the orthogonal projection onto the free coordinates' part of the
    null space of the active rows (the tangent space of N&W eq. 12.53, reduced by the
    active bounds)."""
    _, _, Vt, keep = svd
    V = jnp.where(keep[:, None], Vt, 0.0)

    def project(v):
        v = jnp.where(free, v, 0.0)
        return v - V.T @ (V @ v)

    return project


def min_function(mult, slack, mult_scale, slack_scale):
    """Complementarity in constraint units: `min(|mult| slack_scale / mult_scale,
    max(slack, 0))`, zero when either the multiplier or the slack vanishes."""
    return jnp.minimum(jnp.abs(mult) * slack_scale / mult_scale, jnp.maximum(slack, 0.0))


def max_or_zero(v) -> Float[Array, ""]:
    return jnp.max(v, initial=0.0) if v.size else jnp.zeros((), v.dtype)
