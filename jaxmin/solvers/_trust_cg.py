"""Steihaug's truncated CG for a trust-region subproblem (Steihaug 1983; Nocedal &
Wright, Alg. 7.2): `min g.p + p.B p / 2` subject to `|p| <= delta`, matrix-free.

Used by the matrix-free `LevenbergMarquardt` with `B = J^T J`.
Notation (N&W §7.1): iterate `z`, model gradient `r = B z + g`, direction `d`.
"""

import equinox as eqx
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Scalar

from .._typing import Vector


class TrustCGResult(eqx.Module):
    """`p`: the step; `on_boundary`: `|p| = delta` (the region bound the step);
    `num_steps`: products with `B`."""

    p: Vector
    on_boundary: Bool[Array, ""]
    num_steps: Int[Array, ""]


class _State(eqx.Module):
    z: Vector
    r: Vector
    d: Vector
    rr: Scalar
    num_steps: Int[Array, ""]
    done: Bool[Array, ""]
    on_boundary: Bool[Array, ""]


def _to_boundary(z: Vector, d: Vector, delta: Scalar) -> Vector:
    """`z + tau d` with `tau >= 0` and `|z + tau d| = delta` (for `|z| <= delta`)."""
    dd, zd, zz = jnp.dot(d, d), jnp.dot(z, d), jnp.dot(z, z)
    dd = jnp.where(dd > 0, dd, 1.0)
    tau = (-zd + jnp.sqrt(jnp.maximum(zd * zd + dd * (delta**2 - zz), 0.0))) / dd
    return z + tau * d


def steihaug_cg(matvec, g: Vector, delta: Scalar, max_steps: int, rtol: Scalar) -> TrustCGResult:
    """Approximately minimise `g.p + p.B p / 2` in `|p| <= delta`: CG from `p = 0` that
    stops at the boundary, at non-positive curvature (then moving to the boundary),
    at `|B p + g| <= rtol |g|`, or after `max_steps`."""
    gnorm = jnp.linalg.norm(g)
    tol = rtol * gnorm

    def cond(s: _State):
        return ~s.done

    def body(s: _State):
        Bd = matvec(s.d).astype(g.dtype)
        dBd = jnp.dot(s.d, Bd)
        alpha = s.rr / jnp.where(dBd > 0, dBd, 1.0)
        z_next = s.z + alpha * s.d
        outside = (dBd <= 0) | (jnp.linalg.norm(z_next) >= delta) | ~jnp.all(jnp.isfinite(z_next))
        r = s.r + alpha * Bd
        rr = jnp.dot(r, r)
        d = -r + (rr / s.rr) * s.d
        z = jnp.where(outside, _to_boundary(s.z, s.d, delta), z_next)
        n = s.num_steps + 1
        done = outside | (jnp.sqrt(rr) <= tol) | (n >= max_steps)
        return _State(z=z, r=r, d=d, rr=rr, num_steps=n, done=done, on_boundary=outside)

    zero = jnp.zeros_like(g)
    start = _State(z=zero, r=g, d=-g, rr=jnp.dot(g, g), num_steps=jnp.array(0, jnp.int32),
                   done=~(gnorm > 0), on_boundary=jnp.array(False))
    s = lax.while_loop(cond, body, start)
    return TrustCGResult(p=s.z, on_boundary=s.on_boundary, num_steps=s.num_steps)
