"""`check_optimality`: an independent certificate that a point solves a problem.

Nothing of the solver is trusted but, where it reports them, its multipliers (which
are checked, not used as evidence): the gradient, the constraints and their Jacobians,
the active sets, the multipliers (when absent) and the curvature are recomputed at the
point. References: Nocedal & Wright, *Numerical Optimization*, 2nd ed., ch. 12 (KKT
conditions, Thm. 12.1; second-order conditions, Thm. 12.5 and §12.5), Golub & Van Loan
Alg. 10.1.1 (Lanczos), Nocedal & Wright §8.1 (finite differences).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Bool, Float, Int

from .._constraints import check_bounds
from .._solution import Solution
from . import _kkt as kkt
from ._defaults import default_rtol, fd_step
from ._finite_difference import differences, evaluate, gradient_noise, random_directions, stencil
from ._lanczos import hessian_vector_product, smallest_eigenvalue
from ._model import model_decrease
from ._report import AbstractReport, item, verdict


class OptimalityReport(AbstractReport):
    """What `check_optimality` found; every figure is an array (batched under `vmap`).

    **Fields** (each `*_ok` is a bool array; `passed` is their conjunction):

    - `stationarity`: `max_i |grad L_i| max(|x_i|, 1)`, the Lagrangian's gradient with
      the bound multipliers taken out; `stationarity_tol = atol + rtol max(1, |f|,
      max_i |g_i| max(|x_i|, 1)) + 10 gradient_noise` (the relative test of Gill,
      Murray & Wright §8.2.3, never below what the dtype resolves).
      `stationarity_ok` also holds when the gradient is larger but f cannot resolve
      it: its part normal to the active constraints passes, the reduced Hessian is
      positive definite and the quadratic model's decrease from x, `model_decrease =
      r.H^-1.r / 2` on the tangent space (by CG), is at most `decrease_tol = 10 eps
      |f|`: a gradient along the stiff directions of an ill-conditioned problem
      (needs `second_order`; else `model_decrease` is `inf`).
    - `gradient_noise`: `max_i |g_i(x + delta) - g_i(x)| max(|x_i|, 1)` over four
      random perturbations of x by 4 ulp: the gradient's rounding noise (after Moré &
      Wild 2011); a point whose gradient is within it is stationary to the dtype's
      precision.
    - `feasibility`: the largest violation of `eq`, `ineq` and `bounds`;
      `feasibility_tol = atol + rtol max(1, |x|_inf)`. A constraint whose slack is at
      most `feasibility_tol` counts as active.
    - `complementarity`: `max min(|mult| max(1, |x|_inf) / mult_scale, slack)` over
      inequalities and bounds (constraint units), against `feasibility_tol`.
    - `multiplier_sign`: the largest wrong-signed multiplier (`ineq` multipliers and
      bound multipliers at active bounds); `multiplier_sign_tol = atol + rtol
      mult_scale + 10 max|g noise|`, `mult_scale = max(1, |g|_inf, |multipliers|_inf)`.
    - `min_curvature`: the smallest eigenvalue of the Lagrangian's Hessian on the null
      space of the active constraints (free coordinates only), by Lanczos;
      `curvature_tol = atol + rtol^(4/3) max(1, |Ritz values|)` (`eps^(2/3)` relative
      by default: Hessian-vector products are accurate to ~`eps |H|`);
      `lanczos_steps` used.
      `nan` when skipped, `inf` when the null space is `{0}`.
    - `gradient_error`, `gradient_tol`: per random direction `d`, `|fd - grad f . d|`
      and its allowance `atol + 3 max(fd error estimates) + sqrt(rtol) max(|fd|,
      |grad f . d|)`; `fd_derivative`, `ad_derivative` the two values (`nan` when
      skipped).
    - `fun`; `eq_multipliers`, `ineq_multipliers`, `bound_multipliers` (flat, `w =
      w_lower - w_upper`) as used; `multipliers_estimated`; `active_ineq`,
      `active_lower`, `active_upper`.
    - `num_fun_evals` (gradients and values), `num_hvp_evals`: what the check cost.
    """

    stationarity: Float[Array, "*b"]
    stationarity_tol: Float[Array, "*b"]
    gradient_noise: Float[Array, "*b"]
    model_decrease: Float[Array, "*b"]
    decrease_tol: Float[Array, "*b"]
    stationarity_ok: Bool[Array, "*b"]
    feasibility: Float[Array, "*b"]
    feasibility_tol: Float[Array, "*b"]
    feasibility_ok: Bool[Array, "*b"]
    complementarity: Float[Array, "*b"]
    complementarity_ok: Bool[Array, "*b"]
    multiplier_sign: Float[Array, "*b"]
    multiplier_sign_tol: Float[Array, "*b"]
    multiplier_sign_ok: Bool[Array, "*b"]
    min_curvature: Float[Array, "*b"]
    curvature_tol: Float[Array, "*b"]
    second_order_ok: Bool[Array, "*b"]
    lanczos_steps: Int[Array, "*b"]
    gradient_error: Float[Array, "*b k"]
    gradient_tol: Float[Array, "*b k"]
    fd_derivative: Float[Array, "*b k"]
    ad_derivative: Float[Array, "*b k"]
    gradient_ok: Bool[Array, "*b"]
    fun: Float[Array, "*b"]
    eq_multipliers: Float[Array, "*b me"]
    ineq_multipliers: Float[Array, "*b mi"]
    bound_multipliers: Float[Array, "*b n"]
    active_ineq: Bool[Array, "*b mi"]
    active_lower: Bool[Array, "*b n"]
    active_upper: Bool[Array, "*b n"]
    num_fun_evals: Int[Array, "*b"]
    num_hvp_evals: Int[Array, "*b"]
    multipliers_estimated: bool = eqx.field(static=True, default=True)

    def lines(self, index):
        get = lambda a: item(a, index)  # noqa: E731
        head = "optimal" if get(self.passed) else "NOT optimal"
        source = "least-squares estimates" if self.multipliers_estimated else "as given"
        out = [
            f"check_optimality: {head} (f = {get(self.fun):.6g}; multipliers {source})",
            f"  stationarity     {get(self.stationarity):.3g} <= {get(self.stationarity_tol):.3g}"
            f" (gradient noise {get(self.gradient_noise):.2g}){self._unresolved(index)}"
            f"  {verdict(get(self.stationarity_ok))}",
            f"  feasibility      {get(self.feasibility):.3g} <= {get(self.feasibility_tol):.3g}"
            f"  {verdict(get(self.feasibility_ok))}",
            f"  complementarity  {get(self.complementarity):.3g} <= {get(self.feasibility_tol):.3g}"
            f"  {verdict(get(self.complementarity_ok))}",
            f"  multiplier signs {get(self.multiplier_sign):.3g} <= {get(self.multiplier_sign_tol):.3g}"
            f"  {verdict(get(self.multiplier_sign_ok))}",
        ]
        curv = get(self.min_curvature)
        if curv != curv:  # nan: skipped
            out.append("  second order     skipped")
        else:
            out.append(
                f"  second order     min curvature {curv:.3g} >= -{get(self.curvature_tol):.3g}"
                f" ({int(get(self.lanczos_steps))} Lanczos steps)  {verdict(get(self.second_order_ok))}"
            )
        err, tol = get(self.gradient_error), get(self.gradient_tol)
        if err.size == 0 or err[0] != err[0]:
            out.append("  gradient         skipped")
        else:
            safe = np.where(tol > 0, tol, 1.0)
            worst = int(np.where(tol > 0, err / safe, np.where(err > 0, np.inf, 0.0)).argmax())
            out.append(
                f"  gradient         |fd - ad| {err[worst]:.3g} <= {tol[worst]:.3g} (worst of "
                f"{err.size} directions: fd {get(self.fd_derivative)[worst]:.6g}, "
                f"ad {get(self.ad_derivative)[worst]:.6g})  {verdict(get(self.gradient_ok))}"
            )
        return out

    def _unresolved(self, index) -> str:
        stat, tol = item(self.stationarity, index), item(self.stationarity_tol, index)
        if stat <= tol or not item(self.stationarity_ok, index):
            return ""
        return (f"; above it, but the model decrease {item(self.model_decrease, index):.2g} <= "
                f"{item(self.decrease_tol, index):.2g} is below f's resolution")


def check_optimality(
    fn,
    sol_or_x,
    args=(),
    *,
    bounds=None,
    eq=None,
    ineq=None,
    rtol=None,
    atol=0.0,
    second_order: bool = True,
    check_gradient: bool = True,
    multipliers=None,
    lanczos_steps: int = 40,
    fd_directions: int = 3,
    key=None,
) -> OptimalityReport:
    """Certify that a point is a local minimiser of `fn(x, *args)` subject to `eq(x,
    *args) = 0`, `ineq(x, *args) >= 0` and `bounds`, without trusting the solver.

    **Arguments:**

    - `fn`, `args`, `bounds`, `eq`, `ineq`: as for `jm.minimize`.
    - `sol_or_x`: a `jm.Solution` or a point (any pytree of floating arrays).
    - `rtol`, `atol`: each condition passes when its figure is at most `atol + rtol
      scale` (see `OptimalityReport` for each scale). `rtol` defaults to `sqrt(eps)`
      of x's dtype: 1.5e-8 in float64, 3.5e-4 in float32. A solve stopped at a loose
      `gtol` needs a looser `rtol`.
    - `second_order`: check that the Lagrangian's Hessian has no direction of negative
      curvature (below `-curvature_tol`) on the null space of the active constraints'
      Jacobian within the free coordinates (`curvature_tol = atol + rtol^(4/3)
      max(1, |H|)`, by default `eps^(2/3) |H|`: 2.4e-5 |H| in float32; the
      second-order necessary condition, N&W Thm. 12.5, on the subspace `{d : A d =
      0}` contained in the critical cone). By `lanczos_steps` steps of Lanczos on
      Hessian-vector products (`jax.jvp` of `jax.grad`, linearised once): never a
      dense Hessian, `O(lanczos_steps n)` memory. Exact once `lanczos_steps` reaches
      the dimension of the subspace; with fewer steps the smallest Ritz value
      converges to the smallest eigenvalue from above, and can miss a negative one
      when the random start is nearly orthogonal to its eigenvector or the spectrum
      above it is dense near it (raise `lanczos_steps`).
    - `check_gradient`: compare `jax.grad(fn)` with central differences along
      `fd_directions` random directions (step `eps^(1/3) max(1, |x|_inf)`, N&W §8.1;
      coordinates within two steps of a bound are left out of the directions). At a
      minimiser both are near 0: this catches a wrong gradient that made the solver
      stop at a non-stationary point (use `check_derivatives` to check a gradient
      everywhere).
    - `multipliers`: `None` (the Solution's `multipliers` and, with bounds, its
      `state.w` where present; else estimated), `"estimate"` (always estimate), or
      `(eq_mult, ineq_mult)` with `grad f = J_eq^T eq_mult + J_ineq^T ineq_mult` at a
      KKT point. Estimates are least squares on the active set (`_kkt.py`).
    - `key`: the random directions' key (default `jax.random.key(0)`: deterministic).

    Returns an `OptimalityReport`, truthy when every condition passed: `assert report,
    report.why`. Works under `jit` and `vmap` (every field batched). Cost: five
    gradients (one at x, four for `gradient_noise`), `4 fd_directions` values of
    `fn`, at most `2 lanczos_steps` Hessian-vector products (Lanczos, and CG for the
    model decrease) and a Jacobian of each constraint function.

    **Example:**

    ```python
    def f(x):
        return jnp.sum((x - 1.0) ** 2) + jnp.sum(x**4)

    sol = jm.minimize(f, jnp.zeros(3))
    report = jm.testing.check_optimality(f, sol)
    assert report, report.why
    assert not jm.testing.check_optimality(f, sol.x + 0.1)   # not a minimiser
    ```
    """
    if not isinstance(args, tuple):
        args = (args,)
    x, given, w_given, estimated = _unpack(sol_or_x, multipliers, bounds is not None)
    x = jax.tree.map(jnp.asarray, x)
    leaves = jax.tree.leaves(x)
    if not leaves or not all(jnp.issubdtype(v.dtype, jnp.floating) for v in leaves):
        raise ValueError("`sol_or_x` must be a Solution or a pytree of floating arrays.")
    dtype = jnp.result_type(*leaves)
    rtol = default_rtol(dtype) if rtol is None else rtol
    if bounds is not None:
        lower, upper = check_bounds(bounds, x)
        bounds = ([jnp.asarray(b, dtype) for b in lower], [jnp.asarray(b, dtype) for b in upper])
    if given is not None:
        given = tuple(None if m is None else jnp.asarray(m, dtype) for m in given)
    key = jr.key(0) if key is None else key
    settings = (second_order, check_gradient, int(lanczos_steps), int(fd_directions), estimated)
    return _certify(
        fn, eq, ineq, x, args, bounds, given, w_given,
        jnp.asarray(rtol, dtype), jnp.asarray(atol, dtype), key, settings,
    )


def _unpack(sol_or_x, multipliers, has_bounds):
    """`(x, (eq_mult, ineq_mult) or None, w or None, estimated)`."""
    if isinstance(multipliers, str):
        if multipliers != "estimate":
            raise ValueError(f'`multipliers` must be None, "estimate" or a pair; got {multipliers!r}.')
        x = sol_or_x.x if isinstance(sol_or_x, Solution) else sol_or_x
        return x, None, None, True
    if multipliers is not None:
        if not (isinstance(multipliers, (tuple, list)) and len(multipliers) == 2):
            raise ValueError("`multipliers` must be a pair `(eq_mult, ineq_mult)`.")
        x = sol_or_x.x if isinstance(sol_or_x, Solution) else sol_or_x
        return x, tuple(multipliers), None, False
    if isinstance(sol_or_x, Solution):
        if sol_or_x.multipliers is not None:
            w = getattr(sol_or_x.state, "w", None) if has_bounds else None
            return sol_or_x.x, tuple(sol_or_x.multipliers), w, False
        return sol_or_x.x, None, None, True
    return sol_or_x, None, None, True


def _second_order(pt: kkt.Point, x, fields, r, svd, free, rtol, atol, key, steps):
    """The Lagrangian's curvature on the null space of the active constraints (N&W
    Thm. 12.5) by Lanczos, and the reduced quadratic model's decrease from x,
    `r.H^-1.r / 2`, by CG, both on Hessian-vector products."""
    lam_eq, lam_in = fields["eq_multipliers"], fields["ineq_multipliers"]

    def lagrangian(z):
        out = pt.f(z)
        if pt.eq_fn is not None:
            out = out - jnp.dot(lam_eq, pt.eq_fn(z))
        if pt.in_fn is not None:
            out = out - jnp.dot(lam_in, pt.in_fn(z))
        return out

    hvp = hessian_vector_product(jax.grad(lagrangian), x)
    project = kkt.null_space_projector(svd, free) if svd is not None else (lambda v: jnp.where(free, v, 0.0))
    reduced = lambda v: project(hvp(project(v)))  # noqa: E731
    steps = min(steps, x.shape[0])
    lo, hi, k = smallest_eigenvalue(reduced, project(jr.normal(key, x.shape, x.dtype)), steps)
    tangent = project(r)
    decrease, cg_steps = model_decrease(reduced, tangent, steps)
    curv_scale = jnp.where(k > 0, jnp.maximum(jnp.abs(lo), jnp.abs(hi)), 0.0)
    # HVPs are accurate to ~eps |H|; rtol^(4/3) (eps^(2/3) by default, 200 eps in
    # float32) also leaves room for the curvature's change across x's own error
    curv_tol = atol + rtol ** (4.0 / 3.0) * jnp.maximum(1.0, curv_scale)
    return dict(
        min_curvature=lo, curvature_tol=curv_tol, second_order_ok=lo >= -curv_tol, lanczos_steps=k,
        model_decrease=decrease, num_hvp_evals=k + cg_steps,
    ), tangent


def _gradient_check(pt: kkt.Point, x, rtol, atol, key, num_dirs):
    """`jax.grad` against central differences along random directions (N&W §8.1)."""
    h = fd_step(x.dtype) * jnp.maximum(1.0, jnp.max(jnp.abs(x)))
    D = random_directions(key, num_dirs, x.shape[0], x.dtype)
    room = jnp.minimum(x - pt.lower, pt.upper - x)
    D = jnp.where(room[None, :] >= 2.0 * h * jnp.abs(D), D, 0.0)
    fd, err = differences(evaluate(pt.f, stencil(x, D, h))[:, None], h)
    fd, ad = fd[:, 0], D @ pt.g
    grad_err = jnp.abs(fd - ad)
    grad_tol = atol + 3.0 * jnp.max(err) + jnp.sqrt(rtol) * jnp.maximum(jnp.abs(fd), jnp.abs(ad))
    return dict(gradient_error=grad_err, gradient_tol=grad_tol, fd_derivative=fd, ad_derivative=ad,
                gradient_ok=jnp.all(grad_err <= grad_tol))


@eqx.filter_jit
def _certify(fn, eq, ineq, x, args, bounds, given, w_given, rtol, atol, key, settings):
    second_order, check_gradient, steps, num_dirs, estimated = settings
    x, unravel = ravel_pytree(x)
    dtype, nan = x.dtype, jnp.full((), jnp.nan, x.dtype)
    pt = kkt.evaluate_problem(fn, eq, ineq, unravel, x, args, bounds)
    k_key, d_key, n_key = jr.split(key, 3)
    noise = gradient_noise(jax.grad(pt.f), x, pt.lower, pt.upper, n_key)
    fields, r, svd, free = kkt.first_order(pt, x, given, w_given, rtol, atol, noise)
    if second_order:
        second, tangent = _second_order(pt, x, fields, r, svd, free, rtol, atol, k_key, steps)
    else:
        second, tangent = dict(min_curvature=nan, curvature_tol=nan, second_order_ok=jnp.ones((), bool),
                               lanczos_steps=jnp.zeros((), jnp.int32), model_decrease=jnp.full((), jnp.inf, dtype),
                               num_hvp_evals=jnp.zeros((), jnp.int32)), jnp.zeros_like(r)
    if check_gradient:
        grad = _gradient_check(pt, x, rtol, atol, d_key, num_dirs)
    else:
        grad = dict(gradient_ok=jnp.ones((), bool), **{
            k: jnp.full(num_dirs, jnp.nan, dtype) for k in ("gradient_error", "gradient_tol", "fd_derivative", "ad_derivative")})

    # stationarity (N&W eq. 12.34a), relative as in Gill, Murray & Wright §8.2.3 and never
    # below the gradient's noise; or, tangentially, a model decrease f cannot resolve
    xi = jnp.maximum(jnp.abs(x), 1.0)
    stationarity = jnp.max(jnp.abs(r) * xi)
    stat_tol = (atol + rtol * jnp.maximum(jnp.maximum(1.0, jnp.abs(pt.fun)), jnp.max(jnp.abs(pt.g) * xi))
                + 10.0 * jnp.max(noise * xi))
    decrease_tol = 10.0 * jnp.finfo(dtype).eps * jnp.abs(pt.fun)
    unresolvable = (jnp.max(jnp.abs(r - tangent) * xi) <= stat_tol) & (second["model_decrease"] <= decrease_tol)
    oks = dict(
        stationarity_ok=(stationarity <= stat_tol) | (unresolvable & second["second_order_ok"]),
        feasibility_ok=fields["feasibility"] <= fields["feasibility_tol"],
        complementarity_ok=fields["complementarity"] <= fields["feasibility_tol"],
        multiplier_sign_ok=fields["multiplier_sign"] <= fields["multiplier_sign_tol"],
        second_order_ok=second.pop("second_order_ok"),
        gradient_ok=grad.pop("gradient_ok"),
    )
    return OptimalityReport(
        passed=jnp.all(jnp.stack(list(oks.values()))),
        stationarity=stationarity, stationarity_tol=stat_tol, gradient_noise=jnp.max(noise * xi),
        decrease_tol=decrease_tol, fun=pt.fun, multipliers_estimated=estimated,
        num_fun_evals=jnp.asarray(5 + (4 * num_dirs if check_gradient else 0), jnp.int32),
        **fields, **second, **grad, **oks,
    )
