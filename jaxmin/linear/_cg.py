"""Conjugate gradients: preconditioned CG (N&W Alg. 5.3) and truncated CG for Newton
systems (N&W Alg. 7.1; Steihaug 1983).

Notation (Nocedal & Wright ch. 5): iterate `x`, residual `r = b - A x`, preconditioned
residual `z = M^{-1} r`, direction `p`, step `alpha`, `beta`. Both solvers start from
`x = 0`, so the first direction is `M^{-1} b`.
"""

import dataclasses
from typing import Callable, ClassVar, Optional, Union

import equinox as eqx
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Scalar

from .._misc import as_dtype, eps, is_finite
from .._typing import ScalarLike, Vector
from ._base import (
    AbstractLinearSolver,
    LinearResult,
    MatVec,
    Reason,
    apply_on_failure,
    check_on_failure,
    check_rhs,
    reason_array,
)


class _CGState(eqx.Module):
    # the last accepted step; never overwritten by a rejected (non-finite or
    # non-positive-curvature) one
    x: Vector
    r: Vector
    p: Vector
    rz: Scalar  # r . M^{-1} r
    # bookkeeping
    num_steps: Int[Array, ""]  # matvecs made, including a rejected last one
    curved: Bool[Array, ""]  # stopped at p^T A p <= curvature_tol |p|^2
    nonfinite: Bool[Array, ""]  # stopped at a NaN or inf


def _cg(
    matvec: MatVec,
    b: Vector,
    precondition: Callable[[Vector], Vector],
    tol: Scalar,
    max_steps: int,
    curvature_tol: Scalar,
) -> _CGState:
    """Preconditioned CG from `x = 0` until `|r| <= tol`, `max_steps` matvecs, a
    direction with `p^T A p <= curvature_tol |p|^2`, or a non-finite value."""

    def cond(s: _CGState):
        return (jnp.linalg.norm(s.r) > tol) & ~s.curved & ~s.nonfinite & (s.num_steps < max_steps)

    def body(s: _CGState):
        Ap = matvec(s.p).astype(b.dtype)
        pAp = jnp.dot(s.p, Ap)
        alpha = s.rz / pAp
        x = s.x + alpha * s.p
        r = s.r - alpha * Ap
        z = precondition(r).astype(b.dtype)
        rz = jnp.dot(r, z)
        p = z + (rz / s.rz) * s.p
        # `<=` is False for NaN, so a NaN curvature counts as non-finite, not curved;
        # a curved step divides by `pAp <= 0`, so its infs are no failure
        curved = pAp <= curvature_tol * jnp.dot(s.p, s.p)
        nonfinite = ~is_finite(pAp) | (~curved & ~is_finite(x, r, p, rz))
        keep = curved | nonfinite
        return _CGState(
            x=jnp.where(keep, s.x, x),
            r=jnp.where(keep, s.r, r),
            p=jnp.where(keep, s.p, p),
            rz=jnp.where(keep, s.rz, rz),
            num_steps=s.num_steps + 1,
            curved=curved,
            nonfinite=nonfinite,
        )

    z = precondition(b).astype(b.dtype)
    start = _CGState(
        x=jnp.zeros_like(b),
        r=b,
        p=z,
        rz=jnp.dot(b, z),
        num_steps=jnp.array(0, jnp.int32),
        curved=jnp.array(False),
        nonfinite=~is_finite(b, z),
    )
    return lax.while_loop(cond, body, start)


def _reason(s: _CGState, tol: Scalar, curved: Reason) -> Int[Array, ""]:
    # derived after the loop: a rejected step leaves `r` untouched, so it cannot
    # also read as converged
    return jnp.select(
        [s.nonfinite, s.curved, jnp.linalg.norm(s.r) <= tol],
        [reason_array(Reason.FAILED), reason_array(curved), reason_array(Reason.CONVERGED)],
        reason_array(Reason.MAX_STEPS),
    )


def _check_max_steps(solver) -> None:
    if solver.max_steps is not None and solver.max_steps < 1:
        raise ValueError(f"`{type(solver).__name__}(max_steps=...)` must be at least 1.")


def _identity(v: Vector) -> Vector:
    return v


class CG(AbstractLinearSolver):
    """Matrix-free preconditioned conjugate gradients for symmetric positive-definite
    `A` (Nocedal & Wright, Alg. 5.3), from `x = 0`.

    Stops when `|r| <= max(rtol |b|, atol)` (2-norms, `r = b - A x`). The loop runs
    inside `lax.custom_linear_solve(..., symmetric=True)`, so the solve is
    transposable: `jax.grad`, `jax.jvp` and `jax.jacfwd` through `solve(...).x` with
    respect to `b` and to anything `matvec` closes over differentiate the linear
    system (each derivative is one more CG solve), never the unrolled iterates. This
    is what makes it usable inside a `custom_jvp` rule.

    On `p^T A p <= 0` (A is not positive definite) the solve stops with `FAILED` and
    the last iterate; on a NaN or inf it stops with `FAILED` and `x` all NaN, so that
    the failure propagates through derivatives, as lineax does.

    The default `implicit_solver` of `jm.minimize` for unconstrained problems (the
    Hessian at a minimiser is positive definite). Choose it for any symmetric
    positive-definite system given as a matrix-vector product; for indefinite systems
    use `Lineax(lx.LU())` or GMRES.

    **Arguments:**

    - `rtol` (default `1e-6`): relative residual tolerance, `|r| <= rtol |b|`.
    - `atol` (default `0.0`): absolute residual tolerance, in the units of `b`.
    - `max_steps` (default `None`, meaning `10 n`): most matrix-vector products.
    - `preconditioner` (default `None`, meaning `M = I`): `v -> M^{-1} v` for a
      symmetric positive-definite `M` approximating `A` (e.g. Jacobi, `v / diag(A)`);
      or `"solver"`: as the `implicit_solver` of `jm.minimize`, the inverse-Hessian
      approximation the minimiser's final state holds (`AbstractSolver.
      implicit_preconditioner`: the curvature pairs of `jm.LBFGS`, the matrix of
      `jm.BFGS`; Morales & Nocedal, SIAM J. Optim. 10(4), 2000), and `M = I` for
      solvers that hold none and in a direct call. It pays where the Hessian is
      ill-conditioned and the solver's approximation good, as dense BFGS's after
      many steps (4x fewer CG steps on a ridge problem of condition 1e4); on
      well-conditioned problems, and with L-BFGS's few pairs, CG takes about as many
      steps and each costs more (see `benchmarks/hypergrad.py`).
    - `on_failure` (default `"iterate"`): what `x` is when the solve does not converge
      (`MAX_STEPS` or `FAILED`): `"iterate"` the last iterate, `"nan"` all NaN, or
      `"raise"` an error (also under `jit`). Applies to every solve a derivative
      makes too. The implicit-differentiation rule of `jm.minimize` sets `"nan"` (or
      `"raise"` with `throw=True`), so a tangent system it could not solve never
      passes for a derivative.

    **Example:**

    ```python
    def ridge(w, lam):
        return jnp.sum((w - 1.0) ** 2) + lam * jnp.sum(w**2)

    # derivatives of the solution, tighter than with the default rtol=1e-6
    tight = jm.linear.CG(rtol=1e-10)
    dw_dlam = jax.jacfwd(lambda lam: jm.minimize(ridge, jnp.zeros(3), args=(lam,),
                                                 implicit_solver=tight).x)(0.5)
    # preconditioned by BFGS's inverse-Hessian approximation at the solution
    dw_dlam = jax.jacfwd(lambda lam: jm.minimize(
        ridge, jnp.zeros(3), jm.BFGS(), args=(lam,),
        implicit_solver=jm.linear.CG(preconditioner="solver")).x)(0.5)
    ```
    """

    rtol: ScalarLike = 1e-6
    atol: ScalarLike = 0.0
    max_steps: Optional[int] = eqx.field(default=None, static=True)
    preconditioner: Union[None, str, Callable[[Vector], Vector]] = eqx.field(default=None, static=True)
    on_failure: str = eqx.field(default="iterate", static=True)
    failure_modes: ClassVar[tuple] = ("iterate", "nan", "raise")

    def __check_init__(self):
        _check_max_steps(self)
        check_on_failure(self)
        if isinstance(self.preconditioner, str) and self.preconditioner != "solver":
            raise ValueError('`CG(preconditioner=...)` must be None, a function `v -> M^-1 v` or '
                             f'"solver"; got {self.preconditioner!r}.')
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if isinstance(value, (int, float)) and value < 0:
                raise ValueError(f"`CG({name}=...)` must be non-negative.")

    def with_solver_preconditioner(self, precondition) -> "CG":
        if self.preconditioner != "solver":
            return self
        return dataclasses.replace(self, preconditioner=precondition)

    def solve(self, matvec: MatVec, b: Vector) -> LinearResult:
        check_rhs(self, b)
        max_steps = 10 * b.shape[0] if self.max_steps is None else self.max_steps
        # "solver" stands for the minimiser's own, which only `jm.minimize` supplies
        own = self.preconditioner is None or isinstance(self.preconditioner, str)
        precondition = _identity if own else self.preconditioner

        def cg(matvec, b):
            # called again for every tangent and cotangent; tolerances are relative
            # to that right-hand side
            tol = jnp.maximum(as_dtype(self.rtol, b) * jnp.linalg.norm(b), as_dtype(self.atol, b))
            s = _cg(matvec, b, precondition, tol, max_steps, jnp.zeros((), b.dtype))
            x = jnp.where(s.nonfinite, jnp.nan, s.x)
            reason = _reason(s, tol, Reason.FAILED)
            return apply_on_failure(self.on_failure, x, reason), (s.num_steps, reason)

        x, (num_steps, reason) = lax.custom_linear_solve(
            matvec, b, cg, symmetric=True, has_aux=True
        )
        return LinearResult(x=x, num_steps=num_steps, reason=reason)


class TruncatedCG(AbstractLinearSolver):
    """Conjugate gradients for the Newton system `H p = -g` inside a line-search
    Newton method (Nocedal & Wright, Alg. 7.1), with Steihaug's (1983) exit at
    non-positive curvature but no trust region. Pass `b = -g`.

    Stops at the first of:

    - `|r| <= eta |b|` (`CONVERGED`). By default `eta = min(0.5, sqrt(|b|))`, the
      forcing sequence of N&W eq. (7.3) after Eisenstat & Walker (1996): loose far
      from a solution, tight near one, so Newton-CG converges superlinearly without
      oversolving early systems. A given `rtol` replaces `eta`.
    - `d^T H d <= tol |d|^2` along a CG direction `d` (`NEGATIVE_CURVATURE`): returns
      the iterate so far, or `b` itself (steepest descent) at the first iteration.
    - `max_steps` matvecs (`MAX_STEPS`): returns the iterate so far.
    - a NaN or inf (`FAILED`): returns the last finite iterate, or `b` at the first
      iteration.

    Every iterate after the first step is a descent direction for `-b = g`
    (`x . b > 0`, N&W §7.1), whether `H` is positive definite or indefinite, so the
    result is always one a line search can use. Not transposable: use `CG` to
    differentiate through a solve.

    The default `linear_solver` of `jm.NewtonCG`; it is meant for Newton systems
    only (use `CG` for a linear system you want solved accurately).

    **Arguments:**

    - `rtol` (default `None`, meaning `min(0.5, sqrt(|b|))`): the forcing term `eta`,
      relative to `|b|`.
    - `max_steps` (default `None`, meaning `10 n`): most Hessian-vector products.
    - `negative_curvature_tol` (default `None`, meaning `10 eps` of `b`'s dtype): the
      `tol` of the curvature test, relative to `|d|^2`; the default flags curvature
      that is zero within rounding as well as negative curvature.

    **Example:**

    ```python
    solver = jm.NewtonCG(linear_solver=jm.linear.TruncatedCG(max_steps=20))
    ```
    """

    rtol: Optional[ScalarLike] = None
    max_steps: Optional[int] = eqx.field(default=None, static=True)
    negative_curvature_tol: Optional[ScalarLike] = None

    def __check_init__(self):
        _check_max_steps(self)
        if isinstance(self.rtol, (int, float)) and self.rtol < 0:
            raise ValueError("`TruncatedCG(rtol=...)` must be non-negative.")

    def solve(self, matvec: MatVec, b: Vector) -> LinearResult:
        check_rhs(self, b)
        max_steps = 10 * b.shape[0] if self.max_steps is None else self.max_steps
        b_norm = jnp.linalg.norm(b)
        if self.rtol is None:
            eta = jnp.minimum(0.5, jnp.sqrt(b_norm))
        else:
            eta = as_dtype(self.rtol, b)
        if self.negative_curvature_tol is None:
            curvature_tol = jnp.array(10 * eps(b), b.dtype)
        else:
            curvature_tol = as_dtype(self.negative_curvature_tol, b)
        tol = eta * b_norm
        s = _cg(matvec, b, _identity, tol, max_steps, curvature_tol)
        # a rejected first step leaves x = 0, which is no direction at all
        stopped_at_first = (s.curved | s.nonfinite) & (s.num_steps <= 1)
        x = jnp.where(stopped_at_first, b, s.x)
        return LinearResult(
            x=x, num_steps=s.num_steps, reason=_reason(s, tol, Reason.NEGATIVE_CURVATURE)
        )
