"""Minimisers of interpolating polynomials, shared by the line searches.

Nocedal & Wright §3.5. Each returns NaN where no minimiser exists (the callers then
fall back to bisection or a fixed expansion).
"""

import jax.numpy as jnp
from jaxtyping import Scalar


def cubic_min(a: Scalar, fa: Scalar, da: Scalar, b: Scalar, fb: Scalar, db: Scalar) -> Scalar:
    """Minimiser of the cubic matching `f` and `f'` at `a` and `b` (N&W eq. 3.59)."""
    d1 = da + db - 3 * (fa - fb) / (a - b)
    disc = d1 * d1 - da * db
    d2 = jnp.sign(b - a) * jnp.sqrt(jnp.where(disc >= 0, disc, jnp.nan))
    return b - (b - a) * (db + d2 - d1) / (db - da + 2 * d2)


def quadratic_min(a: Scalar, fa: Scalar, da: Scalar, b: Scalar, fb: Scalar) -> Scalar:
    """Minimiser of the quadratic matching `f(a)`, `f'(a)` and `f(b)`."""
    curvature = (fb - fa - da * (b - a)) / ((b - a) * (b - a))
    return jnp.where(curvature > 0, a - da / (2 * curvature), jnp.nan)


def secant(a: Scalar, da: Scalar, b: Scalar, db: Scalar) -> Scalar:
    """Zero of the line through `(a, f'(a))` and `(b, f'(b))`."""
    return a - da * (b - a) / (db - da)
