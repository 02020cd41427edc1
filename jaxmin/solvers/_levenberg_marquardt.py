"""Levenberg–Marquardt in Moré's trust-region form (Moré 1978; MINPACK `lmder`).

J. J. Moré, "The Levenberg–Marquardt algorithm: implementation and theory", in
*Numerical Analysis*, Lecture Notes in Mathematics 630, Springer 1978, pp. 105-116.

Each step solves the trust-region subproblem `min |J p + r|` subject to `|D p| <= delta`
in the variables scaled by `D` (the largest column norms of `J` seen so far), whose
solution is `(J^T J + lam D^2) p = -J^T r` for the `lam >= 0` that Moré's safeguarded
Newton iteration on the secular equation `|D p(lam)| = delta` finds (`more_lambda`).
The step is kept when the actual decrease of `f = |r|^2 / 2` is at least `1e-4` of the
predicted one, and the radius `delta` follows the ratio of the two, as in `lmder`.

Dense `J` (`n <= DENSE_MAX_N`): the secular equation is solved on the singular value
decomposition of `J D^-1` (for up to 8 unknowns one-sided Jacobi on the triangle of
its QR factorisation, `_jacobi_svd`), computed once per Jacobian, so each trial `lam`
costs `O(n)`. Matrix-free (large `n`, `D = I`): the subproblem is solved approximately by
Steihaug's truncated CG on `J^T J` (`jaxmin.solvers._trust_cg`).

Notation: residuals `r`, Jacobian `J`, scaling `D`, radius `delta`, parameter `lam`,
step `p`, scaled step `q = D p`.
"""

from typing import Optional

import equinox as eqx
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, Scalar

from .._misc import as_dtype, eps, is_finite, max_norm
from .._typing import ScalarLike, Vector
from ._base import AbstractState
from ._jacobi_svd import jacobi_svd_projected
from ._residuals import (
    AbstractLeastSquaresSolver,
    half_sum_of_squares,
    residuals_and_gradient,
    residuals_and_jacobian,
    gauss_newton_operator,
)
from ._search import check_options
from ._stopping import end_step, keep_reason, relative_optimality, start_reason
from ._trust_cg import steihaug_cg

# a trial is accepted when the actual decrease is at least this share of the predicted
# one (MINPACK's 1e-4)
_ACCEPT = 1e-4


class _LMState(AbstractState):
    # at the current iterate
    f: Scalar
    g: Vector  # J^T r
    residuals: Vector
    jac: Optional[Float[Array, "m n"]]  # None when matrix-free
    # the trust region
    scale: Vector  # D: the largest column norms of J seen (ones when matrix-free)
    radius: Scalar  # delta
    lam: Scalar  # the last Levenberg-Marquardt parameter
    first: Bool[Array, ""]  # no step accepted yet (lmder's `iter == 1`)
    flat_steps: Int[Array, ""]
    # bookkeeping
    reason: Int[Array, ""]
    alpha: Scalar  # 1 for an accepted trial, 0 for a rejected one
    ls_evals: Int[Array, ""]
    num_fun_evals: Int[Array, ""]  # evaluations of the residuals
    num_jac_evals: Int[Array, ""]  # Jacobians formed (or linearisations, matrix-free)
    num_hvp_evals: Int[Array, ""]  # products with J^T J (matrix-free)


def _column_norms(J: Float[Array, "m n"]) -> Vector:
    norms = jnp.linalg.norm(J, axis=0)
    return jnp.where(norms > 0, norms, 1.0)  # lmder: a zero column is scaled by 1


def more_lambda(sigma: Vector, b: Vector, delta: Scalar, lam0: Scalar, n: int):
    """Moré's (1978, §5; MINPACK `lmpar`) parameter `lam` with `|q(lam)|` within 10% of
    `delta`, or `lam = 0` when the Gauss–Newton step lies in that region, where
    `q(lam) = -V c`, `c_i = sigma_i b_i / (sigma_i^2 + lam)`, for the singular values
    `sigma` of the scaled Jacobian `J D^-1 = U diag(sigma) V^T` and `b = U^T r`.

    A Newton iteration on `1/|q(lam)| = 1/delta`, safeguarded by the bounds `[lo, hi]`
    that Moré maintains, at most 10 trials from `lam0` (the last step's value).
    Returns `(lam, c)`.
    """
    s2 = sigma * sigma
    tiny = jnp.finfo(sigma.dtype).tiny
    # numerically nonzero singular values; the Gauss-Newton step is the minimum-norm one
    rank_tol = eps(sigma) * max(n, b.shape[0]) * jnp.max(sigma, initial=0.0)
    nonzero = sigma > rank_tol
    c_gn = jnp.where(nonzero, b / jnp.where(nonzero, sigma, 1.0), 0.0)
    norm_gn = jnp.linalg.norm(c_gn)
    phi_gn = norm_gn - delta
    # lower bound: the Newton step from 0 where J has full column rank, else 0
    full_rank = jnp.all(nonzero) & (sigma.shape[0] == n)
    curvature0 = jnp.sum(jnp.where(nonzero, c_gn**2 / jnp.where(nonzero, s2, 1.0), 0.0))
    lo = jnp.where(full_rank & (phi_gn > 0), phi_gn * norm_gn**2 / (delta * curvature0), 0.0)
    gnorm = jnp.linalg.norm(sigma * b)  # |D^-1 J^T r|
    hi = gnorm / delta
    hi = jnp.where(hi > 0, hi, tiny / jnp.minimum(delta, 0.1))
    lam = jnp.clip(lam0, lo, hi)
    lam = jnp.where(lam == 0, gnorm / jnp.maximum(norm_gn, tiny), lam)

    def trial(lam):
        lam = jnp.where(lam == 0, jnp.maximum(tiny, 1e-3 * hi), lam)
        c = sigma * b / (s2 + lam)
        norm = jnp.linalg.norm(c)
        return lam, c, norm, norm - delta

    def cond(carry):
        it, _, _, _, phi, phi_old, lo, _ = carry
        converged = (jnp.abs(phi) <= 0.1 * delta) | ((lo == 0) & (phi <= phi_old) & (phi_old < 0))
        return (it < 10) & ~converged

    def body(carry):
        it, lam, c, norm, phi, _, lo, hi = carry
        # Newton's correction for 1/|q| = 1/delta: |q|'(lam) = -sum c^2/(s^2+lam) / |q|
        curvature = jnp.sum(c * c / (s2 + lam))
        correction = phi * norm**2 / (delta * jnp.maximum(curvature, tiny))
        lo = jnp.where(phi > 0, jnp.maximum(lo, lam), lo)
        hi = jnp.where(phi < 0, jnp.minimum(hi, lam), hi)
        lam, c, new_norm, new_phi = trial(jnp.maximum(lo, lam + correction))
        return it + 1, lam, c, new_norm, new_phi, phi, lo, hi

    lam, c, norm, phi = trial(lam)
    start = (jnp.array(1, jnp.int32), lam, c, norm, phi, jnp.zeros_like(phi), lo, hi)
    _, lam, c, *_ = lax.while_loop(cond, body, start)
    gauss_newton = phi_gn <= 0.1 * delta
    return jnp.where(gauss_newton, 0.0, lam), jnp.where(gauss_newton, c_gn, c)


# up to this many unknowns the SVD is by one-sided Jacobi rotations on the R of a QR
# factorisation (fast under vmap: 10^4 Jacobians of 20 x 3 in 11 ms, 21 ms unfactored)
_JACOBI_MAX_N = 8


def _scaled_svd(A: Float[Array, "m n"], r: Vector):
    """`(sigma, V^T, b = U^T r)` for `A = U diag(sigma) V^T`."""
    if A.shape[1] > _JACOBI_MAX_N:
        U, sigma, Vt = jnp.linalg.svd(A, full_matrices=False)
        return sigma, Vt, U.T @ r
    sigma, V, b = jacobi_svd_projected(A, r)
    return sigma, V.T, b


class LevenbergMarquardt(AbstractLeastSquaresSolver):
    """Levenberg–Marquardt for nonlinear least squares `min |r(x)|^2 / 2`, in Moré's
    (1978) trust-region form as in MINPACK's `lmder`: variable scaling by the column
    norms of `J`, the parameter `lam` from Moré's iteration on the secular equation, a
    ratio test and radius update. Use it with `jm.least_squares`; the default there.

    The robust choice for curve and model fitting, zero- or nonzero-residual,
    full-rank or not. `GaussNewton` costs less per step where `J` is well conditioned.

    Ends as `minimize` does (`solvers/_stopping.py`): `max|J^T r| <= gtol`, a relative
    decrease of f at most `ftol`, or a trial whose predicted decrease is lost in f's
    rounding while the relative gradient is at the precision level.

    **Arguments:**

    - `gtol` (default `1e-5`, in the units of `J^T r`): stop when `max|J^T r| <= gtol`.
    - `ftol` (default `None`, meaning `eps / 4` of the dtype; relative):
      relative-decrease test and precision level.
    - `factor` (default `100.0`, dimensionless): the initial radius is `factor |D x0|`
      (`factor` when that is 0).
    - `matrix_free` (default `None`: by size): `True` (Steihaug CG on `J^T J` with
      `D = I`) or `False` (dense Jacobian).
    - `cg_rtol` (default `1e-4`), `cg_max_steps` (default `None`: `n`): matrix-free, CG
      stops at `|J^T J p + g| <= cg_rtol |g|` or after `cg_max_steps` products.

    **Example:**

    ```python
    def residuals(theta, t, y):   # model minus data
        a, k, c = theta
        return a * jnp.exp(-k * t) + c - y

    t = jnp.linspace(0.0, 5.0, 40)
    y = 2.0 * jnp.exp(-1.3 * t) + 0.1
    sol = jm.least_squares(residuals, jnp.array([1.0, 1.0, 0.0]), jm.LevenbergMarquardt(),
                           args=(t, y))
    print(sol.x, sol.success)   # close to [2.0 1.3 0.1]
    ```
    """

    gtol: ScalarLike = 1e-5
    ftol: Optional[ScalarLike] = None
    factor: ScalarLike = 100.0
    matrix_free: Optional[bool] = eqx.field(default=None, static=True)
    cg_rtol: ScalarLike = 1e-4
    cg_max_steps: Optional[int] = eqx.field(default=None, static=True)

    def __check_init__(self):
        check_options(self, self.gtol, None)
        if isinstance(self.factor, (int, float)) and not self.factor > 0:
            raise ValueError("`LevenbergMarquardt(factor=...)` must be positive.")

    def init(self, fn, x, args, constraints=None):
        del constraints
        zero = jnp.array(0, jnp.int32)
        if self.dense(x):
            r, J = residuals_and_jacobian(fn, x, args)
            g, scale = J.T @ r, _column_norms(J)
        else:
            (r, g), J, scale = residuals_and_gradient(fn, x, args), None, jnp.ones_like(x)
        f = half_sum_of_squares(r)
        radius = as_dtype(self.factor, x) * jnp.linalg.norm(scale * x)
        radius = jnp.where(radius > 0, radius, as_dtype(self.factor, x))
        return _LMState(
            f=f, g=g, residuals=r, jac=J, scale=scale, radius=radius, lam=jnp.zeros((), x.dtype),
            first=jnp.array(True), flat_steps=zero, reason=start_reason(is_finite(x, f, g)),
            alpha=jnp.zeros((), x.dtype), ls_evals=zero, num_fun_evals=jnp.array(1, jnp.int32),
            num_jac_evals=jnp.array(1, jnp.int32), num_hvp_evals=zero,
        )

    def _dense_step(self, state, n):
        """`(p, lam, predicted, slope, |D p|)`: the trust-region step by Moré's
        iteration, the decrease of f its model predicts, and `g.p`."""
        sigma, Vt, b = _scaled_svd(state.jac / state.scale[None, :], state.residuals)
        lam, c = more_lambda(sigma, b, state.radius, state.lam, n)
        Jp_sq, q_sq = jnp.sum((sigma * c) ** 2), jnp.sum(c * c)  # |J p| = |diag(sigma) c|
        # (J^T J + lam D^2) p = -J^T r gives g.p = -(|J p|^2 + lam |D p|^2) and the
        # predicted decrease (|J p|^2 + 2 lam |D p|^2) / 2 (Moré 1978, eq. 4.4)
        predicted = 0.5 * Jp_sq + lam * q_sq
        return -(Vt.T @ c) / state.scale, lam, predicted, -(Jp_sq + lam * q_sq), jnp.sqrt(q_sq)

    def _matrix_free_step(self, fn, x, state, args):
        """As `_dense_step`, by Steihaug CG in the region; `lam` is 0 for a step inside
        it (the Gauss-Newton step) and 1 on its boundary. Also returns the products
        with `J^T J`."""
        _, jvp, vjp = gauss_newton_operator(fn, x, args)
        cg = steihaug_cg(lambda v: vjp(jvp(v)), state.g, state.radius,
                         x.shape[0] if self.cg_max_steps is None else self.cg_max_steps,
                         as_dtype(self.cg_rtol, x))
        Jp = jvp(cg.p)
        slope = jnp.dot(state.g, cg.p)
        lam = jnp.where(cg.on_boundary, 1.0, 0.0).astype(x.dtype)
        return cg.p, lam, -slope - 0.5 * jnp.dot(Jp, Jp), slope, jnp.linalg.norm(cg.p), cg.num_steps + 1

    def step(self, fn, x, state, args, constraints=None):
        del constraints
        dense = self.dense(x)
        if dense:
            p, lam, predicted, slope, pnorm = self._dense_step(state, x.shape[0])
            products = jnp.array(0, jnp.int32)
        else:
            p, lam, predicted, slope, pnorm, products = self._matrix_free_step(fn, x, state, args)
        # lmder: until a step is accepted the radius shrinks to the first step
        radius = jnp.where(state.first, jnp.minimum(state.radius, pnorm), state.radius)
        x_trial = x + p
        if dense:
            r, J = residuals_and_jacobian(fn, x_trial, args)
            g = J.T @ r
        else:
            (r, g), J = residuals_and_gradient(fn, x_trial, args), None
        f_trial = half_sum_of_squares(r)
        finite = is_finite(f_trial, g)
        actual = jnp.where(finite, state.f - f_trial, -jnp.inf)
        ratio = jnp.where(predicted > 0, actual / jnp.where(predicted > 0, predicted, 1.0), 0.0)
        accepted = finite & (ratio >= _ACCEPT)
        radius, lam = _update_radius(radius, lam, ratio, actual, slope, pnorm, state.f, f_trial)
        f_new = jnp.where(accepted, f_trial, state.f)
        x_new = jnp.where(accepted, x_trial, x)
        g_new = jnp.where(accepted, g, state.g)
        # a rejected trial is retried in a smaller region, unless its predicted decrease
        # is already lost in f's rounding
        end = end_step(
            x=x, f=state.f, f_new=f_new, accepted=accepted, moved=jnp.where(accepted, max_norm(p), 0.0),
            predicted=predicted, at_precision=max_norm(p) <= 100 * eps(x) * max_norm(x),
            retry_possible=predicted > 4 * eps(x) * state.f, trial_f=jnp.where(finite, f_trial, jnp.nan),
            optimality=relative_optimality(g_new, x_new), flat_steps=state.flat_steps,
            ftol=self.tolerance_ftol(x),
        )
        # lmder's scaling: D = max(D, column norms of J) at every new Jacobian
        scale = jnp.where(accepted, jnp.maximum(state.scale, _column_norms(J)), state.scale) if dense else state.scale
        new_state = _LMState(
            f=f_new, g=g_new, residuals=jnp.where(accepted, r, state.residuals),
            jac=jnp.where(accepted, J, state.jac) if dense else None,
            scale=scale, radius=radius, lam=lam, first=state.first & ~accepted,
            flat_steps=end.flat_steps, reason=keep_reason(state.reason, end.reason),
            alpha=accepted.astype(x.dtype), ls_evals=jnp.array(1, jnp.int32),
            num_fun_evals=state.num_fun_evals + 1, num_jac_evals=state.num_jac_evals + 1,
            num_hvp_evals=state.num_hvp_evals + products,
        )
        return x_new, new_state


def _update_radius(radius, lam, ratio, actual, slope, pnorm, f, f_trial):
    """`lmder`'s update of `(delta, lam)` from the ratio of actual to predicted decrease;
    `slope = g.p`."""
    # shrink by the minimiser of the quadratic in t through f, the slope and f(x + p),
    # at most 0.5, and 0.1 when that is smaller, |r| grew tenfold or f is not finite
    denominator = slope + actual
    shrink = jnp.where(actual >= 0, 0.5, 0.5 * slope / jnp.where(denominator < 0, denominator, -1.0))
    shrink = jnp.where(~(f_trial < 100 * f) | ~(shrink >= 0.1), 0.1, jnp.minimum(shrink, 0.5))
    small = ratio <= 0.25
    grow = ~small & ((lam == 0) | (ratio >= 0.75))
    radius = jnp.where(small, shrink * jnp.minimum(radius, pnorm / 0.1), jnp.where(grow, pnorm / 0.5, radius))
    lam = jnp.where(small, lam / shrink, jnp.where(grow, 0.5 * lam, lam))
    return radius, lam
