"""Central differences along directions, with an estimate of their own error.

`D(h) = (y(x + h d) - y(x - h d)) / 2h` has truncation error `c h^2 + O(h^4)` and a
rounding error of about `eps |y| / h` (Nocedal & Wright §8.1, eq. 8.7-8.9). The
difference `D(h) - D(2h) = -3 c h^2 + ...` (Richardson's comparison) measures the
truncation error, three times over, together with any noise in `y` (e.g. an inner
solver's tolerance), so the error estimate used is `|D(h) - D(2h)| + eps max|y| / h`.
"""

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

from .._typing import Vector


def random_directions(key, k: int, n: int, dtype) -> Float[Array, "k n"]:
    """`k` Gaussian directions, each scaled to unit infinity norm, so that a step `h`
    moves no coordinate by more than `h`."""
    d = jr.normal(key, (k, n), dtype)
    return d / jnp.max(jnp.abs(d), axis=1, keepdims=True)


def stencil(x: Vector, directions, h) -> Float[Array, "4k n"]:
    """The points `x + h d, x - h d, x + 2h d, x - 2h d` for every direction `d`."""
    offsets = jnp.asarray([1.0, -1.0, 2.0, -2.0], x.dtype) * h
    return (x[None, None, :] + offsets[None, :, None] * directions[:, None, :]).reshape(-1, x.shape[0])


def differences(values: Float[Array, "4k m"], h):
    """`(D(h), err)` per direction from `values` at the `stencil` points (outputs
    flattened to `m` entries): `D(h)` of shape `(k, m)` and an error estimate, in
    2-norm, of shape `(k,)`."""
    v = values.reshape(-1, 4, values.shape[-1])
    d1 = (v[:, 0] - v[:, 1]) / (2.0 * h)
    d2 = (v[:, 2] - v[:, 3]) / (4.0 * h)
    eps = jnp.finfo(values.dtype).eps
    rounding = eps * jnp.max(jnp.abs(v), axis=(1, 2)) * jnp.sqrt(float(v.shape[-1])) / h
    return d1, jnp.linalg.norm(d1 - d2, axis=1) + rounding


def evaluate(fn, points):
    """`fn` at every row of `points`, batched with `vmap`."""
    return jax.vmap(fn)(points)


def gradient_noise(grad_fn, x: Vector, lower: Vector, upper: Vector, key, samples: int = 4):
    """How much `grad_fn` moves when `x` moves by a few units in its last place:
    `max_j |g(x + delta_j) - g(x)|` with `delta_j` random signs times `4 eps
    max(|x_i|, 1)`, elementwise, shape `(n,)`.

    A computed gradient cannot be trusted below this level: it is the gradient's
    rounding noise plus its change across the rounding of x (after the computational
    noise estimates of Moré & Wild, "Estimating computational noise", SIAM J. Sci.
    Comput. 33(3), 2011, applied to the gradient). Points stay inside the bounds.
    """
    eps = jnp.finfo(x.dtype).eps
    signs = jr.rademacher(key, (samples, x.shape[0]), x.dtype)
    points = jnp.clip(x[None, :] + 4.0 * eps * jnp.maximum(jnp.abs(x), 1.0)[None, :] * signs,
                      lower[None, :], upper[None, :])
    g0 = grad_fn(x)
    return jnp.max(jnp.abs(jax.vmap(grad_fn)(points) - g0[None, :]), axis=0)
