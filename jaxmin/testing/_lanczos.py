"""The extreme eigenvalues of a symmetric operator given by matrix-vector products, by
the Lanczos iteration.

Golub & Van Loan, *Matrix Computations*, 4th ed., Alg. 10.1.1 with full
reorthogonalisation (§10.3.1), applied twice per step ("twice is enough", Parlett, *The
Symmetric Eigenvalue Problem*, §6.9). For a Hessian: `k` Hessian-vector products,
`O(k n)` memory and `O(k^2 n)` work, never `n x n`.
"""

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Bool, Float, Int

from .._typing import Vector


def lanczos(matvec, v0: Vector, steps: int):
    """`(alpha, beta, valid)`: the tridiagonal `T` of `steps` Lanczos steps from `v0`
    (diagonal `alpha`, off-diagonal `beta[:-1]`) and which steps are valid (the
    iteration stops early when the Krylov space becomes invariant)."""
    n = v0.shape[0]
    dtype = v0.dtype
    tol = jnp.sqrt(jnp.finfo(dtype).eps)
    norm0 = jnp.linalg.norm(v0)
    alive0 = norm0 > 0
    q0 = jnp.where(alive0, v0 / jnp.where(alive0, norm0, 1.0), 0.0)

    def body(j, carry):
        Q, alpha, beta, valid, q, alive, scale = carry
        Q = Q.at[j].set(q)
        w = matvec(q)
        a = jnp.dot(q, w)
        # Removing every earlier direction also removes `a q` and `b q_prev` (the
        # three-term recurrence) and keeps Q orthonormal in floating point.
        w = w - Q.T @ (Q @ w)
        w = w - Q.T @ (Q @ w)
        b = jnp.linalg.norm(w)
        scale = jnp.maximum(scale, jnp.where(alive, jnp.abs(a) + b, 0.0))
        # an invariant subspace: b is rounding noise; continuing would add spurious
        # Ritz values near 0 from directions outside the operator's range
        alive_next = alive & (b > tol * scale)
        q = jnp.where(alive_next, w / jnp.where(alive_next, b, 1.0), 0.0)
        alpha = alpha.at[j].set(jnp.where(alive, a, 0.0))
        beta = beta.at[j].set(jnp.where(alive_next, b, 0.0))
        return Q, alpha, beta, valid.at[j].set(alive), q, alive_next, scale

    init = (
        jnp.zeros((steps, n), dtype), jnp.zeros(steps, dtype), jnp.zeros(steps, dtype),
        jnp.zeros(steps, bool), q0, alive0, jnp.zeros((), dtype),
    )
    _, alpha, beta, valid, _, _, _ = lax.fori_loop(0, steps, body, init)
    return alpha, beta, valid


def _padded(alpha, beta, valid: Bool[Array, " k"]):
    """T with the steps after a breakdown as decoupled diagonal entries above every
    Ritz value (Gershgorin), so they change neither extreme of the valid block."""
    big = jnp.max(jnp.abs(alpha)) + 2.0 * jnp.max(beta) + 1.0
    return jnp.diag(jnp.where(valid, alpha, big)) + jnp.diag(beta[:-1], 1) + jnp.diag(beta[:-1], -1)


def ritz_values(alpha, beta, valid) -> tuple[Float[Array, ""], Float[Array, ""], Int[Array, ""]]:
    """The smallest and largest Ritz values and the Krylov dimension `k`; `(inf, -inf,
    0)` for an empty Krylov space. The smallest is an upper bound on the operator's
    smallest eigenvalue on the Krylov space's invariant hull and converges to it first
    (Kaniel-Paige theory, Golub & Van Loan Thm. 10.1.2); exact once `k` reaches the
    dimension."""
    ritz = jnp.linalg.eigvalsh(_padded(alpha, beta, valid))
    k = jnp.sum(valid, dtype=jnp.int32)
    top = jnp.max(jnp.where(jnp.arange(valid.shape[0], dtype=jnp.int32) < k, ritz, -jnp.inf))
    return jnp.where(k > 0, ritz[0], jnp.inf), top, k


def smallest_eigenvalue(matvec, v0: Vector, steps: int):
    """`ritz_values` of `steps` Lanczos steps from `v0`: `(smallest, largest, k)`."""
    return ritz_values(*lanczos(matvec, v0, steps))


def hessian_vector_product(grad_fn, x: Vector):
    """`v -> H(x) v` by forward-over-reverse differentiation of `grad_fn`, linearised
    once at `x` so that each product costs one forward-mode pass."""
    _, hvp = jax.linearize(grad_fn, x)
    return hvp
