"""`model_decrease`: how much the quadratic model of f can still decrease from x.

At a point with gradient `r` and (reduced) Hessian `H`, the model `m(p) = r.p + p.H.p/2`
has its minimum `-r.H^-1.r / 2`. When that decrease lies below f's rounding, no method
can make progress from x, whatever the size of `r` (the stiff directions of an
ill-conditioned problem: Gill, Murray & Wright, *Practical Optimization*, §8.2.2).
"""

import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, Int

from .._typing import Vector


def model_decrease(matvec, r: Vector, steps: int) -> tuple[Float[Array, ""], Int[Array, ""]]:
    """`(r.H^-1.r / 2, products)` by at most `steps` conjugate-gradient steps on `H z = r`
    (Nocedal & Wright Alg. 5.2), `inf` where `H` shows non-positive curvature. CG's
    estimate `r.z_k / 2` increases monotonically to the exact value (it is the Gauss
    quadrature rule of the Lanczos process, Golub & Meurant 2010, §6.3)."""
    dtype = r.dtype
    rr0 = jnp.dot(r, r)
    tol = jnp.finfo(dtype).eps * rr0

    def body(_, carry):
        z, res, p, rr, negative, done, count = carry
        Ap = matvec(p)
        pAp = jnp.dot(p, Ap)
        negative = negative | (~done & (pAp <= 0))
        step = ~done & ~negative
        alpha = jnp.where(step, rr / jnp.where(step, pAp, 1.0), 0.0)
        z, res = z + alpha * p, res - alpha * Ap
        rr_new = jnp.dot(res, res)
        p = res + jnp.where(step, rr_new / jnp.where(rr > 0, rr, 1.0), 0.0) * p
        count = count + jnp.where(done | negative, 0, 1)
        done = done | negative | (rr_new <= tol)
        return z, res, p, jnp.where(step, rr_new, rr), negative, done, count

    init = (jnp.zeros_like(r), r, r, rr0, jnp.zeros((), bool), rr0 == 0, jnp.zeros((), jnp.int32))
    z, _, _, _, negative, _, count = lax.fori_loop(0, steps, body, init)
    return jnp.where(negative, jnp.inf, 0.5 * jnp.dot(r, z)), count
