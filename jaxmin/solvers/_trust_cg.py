"""Steihaug's truncated CG for a trust-region subproblem (Steihaug 1983; Nocedal &
Wright, Alg. 7.2): `min g.p + p.B p / 2` subject to `|p| <= delta`, matrix-free.

Used by the matrix-free `LevenbergMarquardt` with `B = J^T J`, and by `NewtonCG` to
certify a minimum (with `delta = inf`: an accurate Newton step, or the direction of
non-positive curvature CG met, N&W §7.1).
Notation (N&W §7.1): iterate `z`, model gradient `r = B z + g`, direction `d`.
"""

import equinox as eqx
import jax
import jax.extend
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Scalar

from .._misc import eps
from .._typing import Vector


class TrustCGResult(eqx.Module):
    """`p`: the step; `on_boundary`: `|p| = delta` (the region bound the step);
    `num_steps`: products with `B`; `curvature`: `d.B d / d.d` along the last CG
    direction `d` (non-positive where CG stopped there: `d` is then a direction of
    non-positive curvature, N&W §7.1)."""

    p: Vector
    on_boundary: Bool[Array, ""]
    num_steps: Int[Array, ""]
    direction: Vector
    curvature: Scalar


class _State(eqx.Module):
    z: Vector
    r: Vector
    d: Vector
    rr: Scalar
    num_steps: Int[Array, ""]
    done: Bool[Array, ""]
    on_boundary: Bool[Array, ""]
    curved_d: Vector  # the last direction searched, and its curvature d.B d / d.d
    curvature: Scalar


def _to_boundary(z: Vector, d: Vector, delta: Scalar) -> Vector:
    """`z + tau d` with `tau >= 0` and `|z + tau d| = delta` (for `|z| <= delta`)."""
    dd, zd, zz = jnp.dot(d, d), jnp.dot(z, d), jnp.dot(z, z)
    dd = jnp.where(dd > 0, dd, 1.0)
    tau = (-zd + jnp.sqrt(jnp.maximum(zd * zd + dd * (delta**2 - zz), 0.0))) / dd
    return z + tau * d


def steihaug_cg(matvec, g: Vector, delta: Scalar, max_steps: int, rtol: Scalar,
                active: Bool[Array, ""] = True) -> TrustCGResult:
    """Approximately minimise `g.p + p.B p / 2` in `|p| <= delta`: CG from `p = 0` that
    stops at the boundary, at non-positive curvature (then moving to the boundary),
    at `|B p + g| <= rtol |g|`, or after `max_steps`. With `active` false it takes no
    step (`p = 0`): a masked call costs nothing where a `lax.cond` under `vmap` would
    run the loop for every member."""
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
        curvature = dBd / jnp.maximum(jnp.dot(s.d, s.d), jnp.finfo(g.dtype).tiny)
        return _State(z=z, r=r, d=d, rr=rr, num_steps=n, done=done, on_boundary=outside,
                      curved_d=s.d, curvature=curvature)

    zero = jnp.zeros_like(g)
    start = _State(z=zero, r=g, d=-g, rr=jnp.dot(g, g), num_steps=jnp.array(0, jnp.int32),
                   done=~(gnorm > 0) | ~jnp.asarray(active), on_boundary=jnp.array(False),
                   curved_d=zero, curvature=jnp.zeros((), g.dtype))
    s = lax.while_loop(cond, body, start)
    return TrustCGResult(p=s.z, on_boundary=s.on_boundary, num_steps=s.num_steps,
                         direction=s.curved_d, curvature=s.curvature)


def second_order_product(gradient, x: Vector):
    """`v -> H(x) v` for `H` the Jacobian of `gradient` (reverse over reverse, so any
    function JAX differentiates once, `custom_vjp` included), or `None` where it cannot
    be differentiated twice (e.g. a `pure_callback` behind a `custom_vjp`): the
    certificate is then skipped and nothing of it is compiled. The product is traced
    once, here, where that is found out: every use replays its jaxpr (differentiating
    twice is the costly part of tracing a solve, ~0.15 s of SQP's on HS71)."""
    product = lambda v: jax.grad(lambda z: jnp.vdot(gradient(z), v))(x)  # noqa: E731
    try:
        traced = jax.make_jaxpr(product)(x)
    except Exception:  # (JAX raises ValueError, TypeError or NotImplementedError here)
        return None
    replay = jax.extend.core.jaxpr_as_fun(traced)
    return lambda v: replay(v)[0]


def accurate_newton_direction(matvec, g: Vector, active: Bool[Array, ""]):
    """`(p, products, predicted)` for the certifying step: `H p = -g` solved by CG to
    `sqrt(eps)` relative residual (Steihaug's CG with no radius), with `predicted` the
    Newton decrement `-g.p / 2`; where CG meets curvature `d.H d <= 0` along a direction
    `d`, `p` is `d` scaled to length `|d.H d| / |d|^2` with `g.p <= 0` (Royer & Wright
    2018, Alg. 1) and `predicted` the model's decrease `-g.p - d.H d t^2 / 2` there.
    Inactive (`active` false): `p = 0`, no products (a `lax.cond`: nothing runs)."""
    def none(_):
        return jnp.zeros_like(g), jnp.array(0, jnp.int32), jnp.zeros((), g.dtype)

    return lax.cond(active, lambda _: _accurate_newton_direction(matvec, g, active), none, None)


def _accurate_newton_direction(matvec, g: Vector, active):
    # (a `vmap`ped cond runs both branches: `active` then masks the loop per member)
    n = g.shape[0]
    cg = steihaug_cg(matvec, g, jnp.asarray(jnp.inf, g.dtype), 10 * n, jnp.sqrt(eps(g)), active)
    curved = cg.on_boundary
    unit = cg.direction / jnp.maximum(jnp.linalg.norm(cg.direction), jnp.finfo(g.dtype).tiny)
    unit = jnp.where(jnp.dot(g, unit) > 0, -unit, unit)
    length = jnp.abs(cg.curvature)
    along = length * unit
    p = jnp.where(curved, along, cg.p)
    predicted = jnp.where(curved, -jnp.dot(g, along) - 0.5 * cg.curvature * length**2, -0.5 * jnp.dot(g, cg.p))
    return p, cg.num_steps, predicted
