"""The cubic interpolant's minimiser (Nocedal & Wright §3.5), used by `Zoom`.

It returns NaN where no minimiser exists; the caller then bisects.
"""

import jax.numpy as jnp
from jaxtyping import Scalar


def cubic_min(a: Scalar, fa: Scalar, da: Scalar, b: Scalar, fb: Scalar, db: Scalar) -> Scalar:
    """Minimiser of the cubic matching `f` and `f'` at `a` and `b` (N&W eq. 3.59)."""
    d1 = da + db - 3 * (fa - fb) / (a - b)
    disc = d1 * d1 - da * db
    d2 = jnp.sign(b - a) * jnp.sqrt(jnp.where(disc >= 0, disc, jnp.nan))
    return b - (b - a) * (db + d2 - d1) / (db - da + 2 * d2)
