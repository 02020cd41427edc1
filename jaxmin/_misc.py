"""Small numerics shared by several modules."""

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Scalar


def max_norm(v: Array) -> Scalar:
    """The infinity norm `max|v|` (0 for an empty vector)."""
    return jnp.max(jnp.abs(v), initial=0.0)


def as_dtype(value: ArrayLike, like: Array) -> Array:
    """`value` (a Python number or a traced hyperparameter) in `like`'s dtype.

    Hyperparameters may be float64 arrays while the solve runs in float32; casting
    keeps the solve in x0's dtype under strict dtype promotion.
    """
    return jnp.asarray(value, dtype=like.dtype)


def eps(like: Array) -> float:
    """Machine epsilon of `like`'s dtype."""
    return float(jnp.finfo(like.dtype).eps)


def is_finite(*values: Array) -> Bool[Array, ""]:
    """True when every element of every value is finite."""
    out = jnp.array(True)
    for v in values:
        out = out & jnp.all(jnp.isfinite(v))
    return out


def below_precision(step_change: Scalar, f: Scalar, like: Array) -> Bool[Array, ""]:
    """True when a predicted or actual change of f is lost in f's rounding error."""
    return jnp.abs(step_change) <= 4 * eps(like) * jnp.abs(f)


def pack_scalars(*scalars: Scalar) -> Array:
    """The scalars as one vector, built by selecting on the index (elementwise, so XLA
    fuses it into one kernel; `jnp.stack` became one kernel per element and a copy). A
    loop that carries its scalars this way updates them in one kernel instead of one
    each; on XLA:CPU such kernels, not the arithmetic, are a small problem's step. The
    index masks are constants of the program (NumPy arrays): computed ones (`iota ==
    i`) were hoisted out of every loop into kernels of their own and carried through
    the loops."""
    size = len(scalars)
    packed = jnp.broadcast_to(scalars[-1], (size,))
    for i in range(size - 2, -1, -1):
        packed = jnp.where(np.arange(size) == i, scalars[i], packed)
    return packed
