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

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Bool, Float

from .._constraints import flat_bounds
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


class Point(NamedTuple):
    """The problem at the checked point, on the flat x."""

    f: Callable
    fun: Float[Array, ""]
    g: Float[Array, " n"]
    eq_fn: Optional[Callable]
    c_eq: Float[Array, " me"]
    J_eq: Float[Array, "me n"]
    in_fn: Optional[Callable]
    c_in: Float[Array, " mi"]
    J_in: Float[Array, "mi n"]
    lower: Float[Array, " n"]
    upper: Float[Array, " n"]


def _constraint(c, unravel, x, args):
    """`(c, c(x), J(x))` of a constraint function on the flat x, or empty arrays."""
    if c is None:
        return None, jnp.zeros((0,), x.dtype), jnp.zeros((0, x.shape[0]), x.dtype)

    def flat(z):
        return jnp.ravel(c(unravel(z), *args)).astype(z.dtype)

    return flat, flat(x), jax.jacrev(flat)(x)


def evaluate_problem(fn, eq, ineq, unravel, x, args, bounds) -> Point:
    """f, its gradient, the constraints, their Jacobians and the bounds at the flat x
    (infinite bounds where there are none)."""

    def f(z):
        return fn(unravel(z), *args)

    n, dtype = x.shape[0], x.dtype
    if bounds is None:
        lower, upper = jnp.full(n, -jnp.inf, dtype), jnp.full(n, jnp.inf, dtype)
    else:
        lower, upper = flat_bounds(*bounds, unravel(x), lambda tree: ravel_pytree(tree)[0])
    return Point(f, *jax.value_and_grad(f)(x), *_constraint(eq, unravel, x, args),
                  *_constraint(ineq, unravel, x, args), lower, upper)


def first_order(pt: Point, x, given, w_given, rtol, atol, noise):
    """Feasibility, activity, multipliers, the Lagrangian's gradient `r`, signs and
    complementarity (N&W eq. 12.34). Returns report fields and `(r, svd, free)`."""
    xs = jnp.maximum(1.0, jnp.max(jnp.abs(x)))
    feas_tol = atol + rtol * xs
    violation = jnp.max(jnp.concatenate([jnp.abs(pt.c_eq), -pt.c_in, pt.lower - x, x - pt.upper]), initial=0.0)
    act_in = pt.c_in <= feas_tol
    act_lo, act_up = x - pt.lower <= feas_tol, pt.upper - x <= feas_tol
    free = ~(act_lo | act_up)
    A = active_rows(pt.J_eq, pt.J_in, act_in, free)
    svd = row_space(A) if A.shape[0] else None
    me, dtype = pt.c_eq.shape[0], x.dtype
    if given is None:
        lam = least_squares_multipliers(pt.g, svd, free) if svd is not None else jnp.zeros(0, dtype)
        lam_eq, lam_in = lam[:me], jnp.where(act_in, lam[me:], 0.0)
    else:
        lam_eq = given[0] if pt.eq_fn is not None else jnp.zeros(0, dtype)
        lam_in = given[1] if pt.in_fn is not None else jnp.zeros(0, dtype)
    r = pt.g - pt.J_eq.T @ lam_eq - pt.J_in.T @ lam_in
    w = jnp.where(free, 0.0, r) if w_given is None else jnp.asarray(w_given, dtype)
    r = r - w
    only_lo, only_up = act_lo & ~act_up, act_up & ~act_lo
    wrong = jnp.concatenate([-lam_in, jnp.where(only_lo, -w, 0.0), jnp.where(only_up, w, 0.0)])
    scales = [jnp.max(jnp.abs(v), initial=0.0) for v in (pt.g, lam_eq, lam_in, w)]
    mult_scale = jnp.maximum(1.0, jnp.max(jnp.stack(scales)))
    comp = jnp.concatenate([
        min_function(lam_in, pt.c_in, mult_scale, xs),
        jnp.where(w > 0, min_function(w, x - pt.lower, mult_scale, xs), 0.0),
        jnp.where(w < 0, min_function(w, pt.upper - x, mult_scale, xs), 0.0),
    ])
    fields = dict(
        feasibility=violation, feasibility_tol=feas_tol,
        complementarity=jnp.max(comp, initial=0.0),
        multiplier_sign=jnp.max(wrong, initial=0.0),
        multiplier_sign_tol=atol + rtol * mult_scale + 10.0 * jnp.max(noise),
        eq_multipliers=lam_eq, ineq_multipliers=lam_in, bound_multipliers=w,
        active_ineq=act_in, active_lower=act_lo, active_upper=act_up,
    )
    return fields, r, svd, free
