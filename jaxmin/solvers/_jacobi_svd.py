"""The singular value decomposition of a tall matrix with few columns by one-sided
Jacobi rotations (Hestenes 1958; Golub & Van Loan, *Matrix Computations*, 4th ed.,
§8.6.3; Demmel & Veselić 1992 for its accuracy).

Pairs of columns are rotated until they are orthogonal; then the columns are `U Σ`
and the accumulated rotations `V`. Only elementwise work and dot products of columns:
under `vmap` a batch of small Jacobians is decomposed without one LAPACK call per
member (`jnp.linalg.svd` was ~3x slower than `eigh` and far slower than this for
10^4 matrices of 20 x 3 on CPU). For a tall matrix, `jacobi_svd_projected` first
reduces it to the triangle of its QR factorisation (Drmač & Veselić 2008).
"""

import itertools

import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._misc import eps

# at most this many sweeps (convergence is quadratic: a handful suffice)
_MAX_SWEEPS = 30


def _rotate(a, v, p, q):
    """Rotate columns `p`, `q` of `A` (lists of columns `a`, `v` of `A` and `V`) so that
    they are orthogonal (the 2 x 2 symmetric Schur decomposition, G&VL Alg. 8.5.1)."""
    ap, aq = a[p], a[q]
    alpha, beta, gamma = jnp.dot(ap, ap), jnp.dot(aq, aq), jnp.dot(ap, aq)
    rotate = gamma != 0
    zeta = (beta - alpha) / (2 * jnp.where(rotate, gamma, 1.0))
    t = jnp.where(zeta >= 0, 1.0, -1.0) / (jnp.abs(zeta) + jnp.sqrt(1 + zeta * zeta))
    t = jnp.where(rotate, t, 0.0)
    c = 1 / jnp.sqrt(1 + t * t)
    s = c * t
    a[p], a[q] = c * ap - s * aq, s * ap + c * aq
    v[p], v[q] = c * v[p] - s * v[q], s * v[p] + c * v[q]


def _off(a):
    """The largest cosine between two columns."""
    tiny = jnp.finfo(a[0].dtype).tiny
    norms = [jnp.dot(x, x) for x in a]
    cosines = [jnp.abs(jnp.dot(a[p], a[q])) / jnp.maximum(jnp.sqrt(norms[p] * norms[q]), tiny)
               for p, q in itertools.combinations(range(len(a)), 2)]
    return jnp.max(jnp.stack(cosines), initial=0.0) if cosines else jnp.zeros((), a[0].dtype)


def jacobi_svd(A: Float[Array, "m n"]):
    """`(sigma, V, US)` with `A = US V^T`, `US = U diag(sigma)` (orthogonal columns),
    `V` orthogonal; `sigma` unsorted."""
    n = A.shape[1]
    tol = eps(A) * A.shape[0]

    def sweep(carry):
        a, v, k = carry
        a, v = list(a), list(v)
        for p, q in itertools.combinations(range(n), 2):
            _rotate(a, v, p, q)
        return tuple(a), tuple(v), k + 1

    def cond(carry):
        a, _, k = carry
        return (k < _MAX_SWEEPS) & (_off(a) > tol)

    identity = jnp.eye(n, dtype=A.dtype)
    start = (tuple(A[:, j] for j in range(n)), tuple(identity[:, j] for j in range(n)), jnp.array(0, jnp.int32))
    a, v, _ = lax.while_loop(cond, sweep, start)
    US, V = jnp.stack(a, axis=1), jnp.stack(v, axis=1)
    return jnp.linalg.norm(US, axis=0), V, US


def _householder_r(A: Float[Array, "m n"], r):
    """`(R, Q^T r)` for `A = Q R` (`m > n`; `R` the leading `n x n`, upper triangular) by
    Householder reflections (G&VL Alg. 5.2.1), on columns: elementwise work and dot
    products only, as the rotations above."""
    m, n = A.shape
    rows = jnp.arange(m)
    a = list(A.T)  # (the columns, contiguous)
    for j in range(n):
        x = jnp.where(rows >= j, a[j], 0.0)
        alpha = -jnp.where(x[j] >= 0, 1.0, -1.0) * jnp.sqrt(jnp.dot(x, x))
        v = jnp.where(rows == j, x - alpha, x)
        vv = jnp.dot(v, v)
        w = jnp.where(vv > 0, 2.0 / jnp.where(vv > 0, vv, 1.0), 0.0)  # (0: a zero column)
        for k in range(j, n):
            a[k] = a[k] - (w * jnp.dot(v, a[k])) * v
        r = r - (w * jnp.dot(v, r)) * v
    return jnp.stack([c[:n] for c in a], axis=1), r[:n]


def jacobi_svd_projected(A: Float[Array, "m n"], r):
    """`(sigma, V, b)` with `A = U diag(sigma) V^T` and `b = U^T r` (0 where `sigma` is):
    for a tall `A` the rotations run on the `n x n` triangle of its QR factorisation
    (Drmač & Veselić 2008: the same singular values and vectors to working accuracy, at
    the cost of `n`-long columns instead of `m`-long ones)."""
    if A.shape[0] > A.shape[1]:
        A, r = _householder_r(A, r)
    sigma, V, US = jacobi_svd(A)
    return sigma, V, jnp.where(sigma > 0, (US.T @ r) / jnp.where(sigma > 0, sigma, 1.0), 0.0)
