"""What SQP measures at one iterate: `f`, `g`, the constraints and their Jacobians
(`_Point`), the constraint violation in its three norms, the rounding levels of the
constraints and of the merit function, and the KKT residual.

Notation as in `_sqp.py` (Nocedal & Wright ch. 18).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Scalar

from .._constraints import Constraints
from .._misc import eps, max_norm
from .._typing import Vector


class _Point(eqx.Module):
    """`f`, `g`, constraint values and Jacobians at one `x`."""

    f: Scalar
    g: Vector
    c_eq: Float[Array, " me"]
    J_eq: Float[Array, "me n"]
    c_in: Float[Array, " mi"]
    J_in: Float[Array, "mi n"]


def bounds_of(constraints: Constraints | None, x: Vector):
    """`(lower, upper)` in `x`'s dtype, `-inf`/`inf` where there are none."""
    if constraints is None or not constraints.has_bounds:
        inf = jnp.full_like(x, jnp.inf)
        return -inf, inf
    return constraints.lower.astype(x.dtype), constraints.upper.astype(x.dtype)


def constraint_fns(constraints: Constraints | None):
    """`(eq, ineq)`, each `None` where absent."""
    eq = None if constraints is None else constraints.eq
    ineq = None if constraints is None else constraints.ineq
    return eq, ineq


def _value_and_jac(c, x, args):
    """`(c(x), dc/dx)`, an empty `(0,)`/`(0, n)` pair where `c` is absent."""
    if c is None:
        return jnp.zeros(0, x.dtype), jnp.zeros((0, x.shape[0]), x.dtype)
    cx = c(x, *args)
    jac = jax.jacfwd if cx.shape[0] >= x.shape[0] else jax.jacrev
    return cx, jac(lambda z: c(z, *args))(x).reshape(cx.shape[0], x.shape[0])


def evaluate(fn, constraints, x: Vector, args: tuple) -> _Point:
    """f, its gradient and the constraints with their Jacobians at `x`."""
    eq, ineq = constraint_fns(constraints)
    f, g = jax.value_and_grad(fn)(x, *args)
    c_eq, J_eq = _value_and_jac(eq, x, args)
    c_in, J_in = _value_and_jac(ineq, x, args)
    return _Point(f=f.astype(x.dtype), g=g, c_eq=c_eq, J_eq=J_eq, c_in=c_in, J_in=J_in)


def violation_terms(c_eq, c_in) -> Vector:
    """Each constraint's violation, `[|c_eq|, max(-c_in, 0)]`: the terms of the l1
    violation, which the merit function weighs one by one."""
    return jnp.concatenate([jnp.abs(c_eq), jnp.maximum(-c_in, 0.0)])


def violation_l1(c_eq, c_in) -> Scalar:
    """The l1 constraint violation `||c_eq||_1 + ||min(c_in, 0)||_1`."""
    return jnp.sum(violation_terms(c_eq, c_in))


def violation_max(c_eq, c_in) -> Scalar:
    """The largest constraint violation (what `ctol` bounds)."""
    return jnp.maximum(max_norm(c_eq), max_norm(jnp.minimum(c_in, 0.0)))


def violation_l2(c_eq, c_in) -> Scalar:
    """Half the squared l2 violation, `(||c_eq||^2 + ||min(c_in, 0)||^2) / 2`: smooth,
    it is what the feasibility step minimises."""
    return 0.5 * (jnp.sum(c_eq**2) + jnp.sum(jnp.minimum(c_in, 0.0) ** 2))


def violated(pt: _Point):
    """The violated constraint values and their Jacobian rows: the equalities, and the
    inequalities below 0 (0 elsewhere)."""
    below = pt.c_in < 0
    c_v = jnp.concatenate([pt.c_eq, jnp.where(below, pt.c_in, 0.0)])
    J_v = jnp.concatenate([pt.J_eq, jnp.where(below[:, None], pt.J_in, 0.0)])
    return c_v, J_v


def constraint_scales(pt: _Point, x: Vector):
    """The magnitude of each constraint's terms, `|c_i| + sum_j |J_ij x_j|` (exact for
    a linear constraint at a feasible point, within a small factor for polynomial
    ones): `eps` times it is the rounding error of `c_i(x)`, below which no solve can
    drive a violation (Higham 2002, §3.1, for the error of a sum)."""
    ax = jnp.abs(x)
    return jnp.abs(pt.c_eq) + jnp.abs(pt.J_eq) @ ax, jnp.abs(pt.c_in) + jnp.abs(pt.J_in) @ ax


def violation_floor(pt: _Point, x: Vector) -> Scalar:
    """The violation that rounding alone leaves: `10 eps` times the scale of the
    equalities and the violated inequalities (`constraint_scales`)."""
    s_eq, s_in = constraint_scales(pt, x)
    s_in = jnp.where(pt.c_in < 0, s_in, 0.0)
    return 10 * eps(x) * jnp.maximum(max_norm(s_eq), max_norm(s_in))


def merit_noise(pt: _Point, x: Vector, nu: Vector) -> Scalar:
    """The rounding error of the merit function `f + sum_i nu_i violation_i` at `x`:
    `eps` times the magnitude of f's terms (`|f| + sum_j |g_j x_j|`, as for the
    constraints) plus the constraints' (`constraint_scales`), each weighted by its
    `nu_i`."""
    s_eq, s_in = constraint_scales(pt, x)
    f_scale = jnp.abs(pt.f) + jnp.sum(jnp.abs(pt.g * x))
    return eps(x) * (f_scale + jnp.dot(nu, jnp.concatenate([s_eq, s_in])))


def lagrangian_grad(pt: _Point, lam_eq, lam_in) -> Vector:
    """`g - J_eq^T lam_eq - J_in^T lam_in` (bound multipliers not included)."""
    return pt.g - pt.J_eq.T @ lam_eq - pt.J_in.T @ lam_in


def kkt_residual(pt: _Point, lam_eq, lam_in, w, x, lower, upper) -> Scalar:
    """The KKT residual's infinity norm: stationarity of the Lagrangian
    `g - J_eq^T lam_eq - J_in^T lam_in - w`, and complementarity `lam_in * c_in`,
    `w * (x - bound)` (multipliers from the last QP, functions at `x`)."""
    stationarity = lagrangian_grad(pt, lam_eq, lam_in) - w
    gap = jnp.where(w > 0, x - lower, jnp.where(w < 0, upper - x, 0.0))
    gap = jnp.where(jnp.isfinite(gap), gap, 0.0)
    return jnp.maximum(
        max_norm(stationarity), jnp.maximum(max_norm(lam_in * jnp.maximum(pt.c_in, 0.0)), max_norm(w * gap))
    )
