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
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Bool, Float, Int, PyTree

from .._constraints import check_bounds, flat_bounds
from .._solution import Solution
from . import _kkt as kkt
from ._defaults import default_rtol, fd_step
from ._finite_difference import differences, evaluate, random_directions, stencil
from ._lanczos import hessian_vector_product, smallest_eigenvalue
from ._report import AbstractReport, item, verdict


class OptimalityReport(AbstractReport):
    """What `check_optimality` found; every figure is an array (batched under `vmap`).

    **Fields** (each `*_ok` is a bool array; `passed` is their conjunction):

    - `stationarity`: `max_i |grad L_i| max(|x_i|, 1)`, the Lagrangian's gradient with
      the bound multipliers taken out; `stationarity_tol = atol + rtol max(1, |f|,
      max_i |g_i| max(|x_i|, 1))` (the relative test of Gill, Murray & Wright §8.2.3).
    - `feasibility`: the largest violation of `eq`, `ineq` and `bounds`;
      `feasibility_tol = atol + rtol max(1, |x|_inf)`. A constraint whose slack is at
      most `feasibility_tol` counts as active.
    - `complementarity`: `max min(|mult| max(1, |x|_inf) / mult_scale, slack)` over
      inequalities and bounds (constraint units), against `feasibility_tol`.
    - `multiplier_sign`: the largest wrong-signed multiplier (`ineq` multipliers and
      bound multipliers at active bounds); `multiplier_sign_tol = atol + rtol
      mult_scale`, `mult_scale = max(1, |g|_inf, |multipliers|_inf)`.
    - `min_curvature`: the smallest eigenvalue of the Lagrangian's Hessian on the null
      space of the active constraints (free coordinates only), by Lanczos;
      `curvature_tol = atol + rtol max(1, |Ritz values|)`; `lanczos_steps` used.
      `nan` when skipped, `inf` when the null space is `{0}`.
    - `gradient_error`, `gradient_tol`: per random direction `d`, `|fd - grad f . d|`
      and its allowance `atol + 3 max(fd error estimates) + sqrt(rtol) max(|fd|,
      |grad f . d|)`; `fd_derivative`, `ad_derivative` the two values (`nan` when
      skipped).
    - `fun`; `eq_multipliers`, `ineq_multipliers`, `bound_multipliers` (flat, `w =
      w_lower - w_upper`) as used; `multipliers_estimated`; `active_ineq`,
      `active_lower`, `active_upper`.
    - `num_fun_evals`, `num_hvp_evals`: what the check cost.
    """

    stationarity: Float[Array, "*b"]
    stationarity_tol: Float[Array, "*b"]
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
            worst = int((err / tol).argmax())
            out.append(
                f"  gradient         |fd - ad| {err[worst]:.3g} <= {tol[worst]:.3g} (worst of "
                f"{err.size} directions: fd {get(self.fd_derivative)[worst]:.6g}, "
                f"ad {get(self.ad_derivative)[worst]:.6g})  {verdict(get(self.gradient_ok))}"
            )
        return out


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
      Jacobian within the free coordinates (the second-order necessary condition,
      N&W Thm. 12.5, on the subspace `{d : A d = 0}` contained in the critical cone).
      By `lanczos_steps` steps of Lanczos on Hessian-vector products (`jax.jvp` of
      `jax.grad`, linearised once): never a dense Hessian, `O(lanczos_steps n)`
      memory. Lanczos can miss a negative eigenvalue only when the random start is
      almost orthogonal to its eigenvector; it is exact once `lanczos_steps` reaches
      the dimension of the subspace.
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
    report.why`. Works under `jit` and `vmap` (every field batched). Cost: one
    value-and-gradient, `4 fd_directions` values of `fn`, at most `lanczos_steps`
    Hessian-vector products and a Jacobian of each constraint function.
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


def _constraint(c, unravel, x, args):
    """`(c(x), J(x))` of a constraint function on the flat x, or empty arrays."""
    if c is None:
        return None, jnp.zeros((0,), x.dtype), jnp.zeros((0, x.shape[0]), x.dtype)

    def flat(z):
        return jnp.ravel(c(unravel(z), *args)).astype(z.dtype)

    return flat, flat(x), jax.jacrev(flat)(x)


@eqx.filter_jit
def _certify(fn, eq, ineq, x, args, bounds, given, w_given, rtol, atol, key, settings):
    second_order, check_gradient, steps, num_dirs, estimated = settings
    x, unravel = ravel_pytree(x)
    n, dtype = x.shape[0], x.dtype

    def f(z):
        return fn(unravel(z), *args)

    fun, g = jax.value_and_grad(f)(x)
    eq_fn, c_eq, J_eq = _constraint(eq, unravel, x, args)
    in_fn, c_in, J_in = _constraint(ineq, unravel, x, args)
    if bounds is None:
        lower, upper = jnp.full(n, -jnp.inf, dtype), jnp.full(n, jnp.inf, dtype)
    else:
        lower, upper = flat_bounds(*bounds, unravel(x))

    # feasibility and activity (N&W Def. 12.1)
    xs = jnp.maximum(1.0, jnp.max(jnp.abs(x)))
    feas_tol = atol + rtol * xs
    violation = jnp.max(
        jnp.concatenate([jnp.abs(c_eq), -c_in, lower - x, x - upper]), initial=0.0
    )
    act_in = c_in <= feas_tol
    act_lo, act_up = x - lower <= feas_tol, upper - x <= feas_tol
    free = ~(act_lo | act_up)

    # multipliers: given (checked) or least squares on the active set
    me = c_eq.shape[0]
    A = kkt.active_rows(J_eq, J_in, act_in, free)
    svd = kkt.row_space(A) if A.shape[0] else None
    if given is None:
        lam = kkt.least_squares_multipliers(g, svd, free) if svd is not None else jnp.zeros(0, dtype)
        lam_eq, lam_in = lam[:me], jnp.where(act_in, lam[me:], 0.0)
    else:
        lam_eq = given[0] if eq is not None else jnp.zeros(0, dtype)
        lam_in = given[1] if ineq is not None else jnp.zeros(0, dtype)
    r = g - J_eq.T @ lam_eq - J_in.T @ lam_in
    w = jnp.where(free, 0.0, r) if w_given is None else jnp.asarray(w_given, dtype)
    r = r - w

    # stationarity (N&W eq. 12.34a), relative as in Gill, Murray & Wright §8.2.3
    xi = jnp.maximum(jnp.abs(x), 1.0)
    stationarity = jnp.max(jnp.abs(r) * xi)
    stat_tol = atol + rtol * jnp.maximum(jnp.maximum(1.0, jnp.abs(fun)), jnp.max(jnp.abs(g) * xi))

    # signs (12.34d) and complementarity (12.34e)
    only_lo, only_up = act_lo & ~act_up, act_up & ~act_lo
    wrong = jnp.concatenate([-lam_in, jnp.where(only_lo, -w, 0.0), jnp.where(only_up, w, 0.0)])
    sign = jnp.max(wrong, initial=0.0)
    scales = [jnp.max(jnp.abs(v), initial=0.0) for v in (g, lam_eq, lam_in, w)]
    mult_scale = jnp.maximum(1.0, jnp.max(jnp.stack(scales)))
    sign_tol = atol + rtol * mult_scale
    comp = jnp.concatenate([
        kkt.min_function(lam_in, c_in, mult_scale, xs),
        jnp.where(w > 0, kkt.min_function(w, x - lower, mult_scale, xs), 0.0),
        jnp.where(w < 0, kkt.min_function(w, upper - x, mult_scale, xs), 0.0),
    ])
    complementarity = jnp.max(comp, initial=0.0)

    # second order (N&W Thm. 12.5) on the reduced Hessian, by Lanczos
    k_key, d_key = jr.split(key)
    if second_order:
        def lagrangian(z):
            out = f(z)
            if eq_fn is not None:
                out = out - jnp.dot(lam_eq, eq_fn(z))
            if in_fn is not None:
                out = out - jnp.dot(lam_in, in_fn(z))
            return out

        hvp = hessian_vector_product(jax.grad(lagrangian), x)
        project = kkt.null_space_projector(svd, free) if svd is not None else (lambda v: jnp.where(free, v, 0.0))
        v0 = project(jr.normal(k_key, (n,), dtype))
        lo, hi, k = smallest_eigenvalue(lambda v: project(hvp(project(v))), v0, min(steps, n))
        curv_scale = jnp.where(k > 0, jnp.maximum(jnp.abs(lo), jnp.abs(hi)), 0.0)
        curv_tol = atol + rtol * jnp.maximum(1.0, curv_scale)
        second_ok = lo >= -curv_tol
    else:
        lo, curv_tol = jnp.full((), jnp.nan, dtype), jnp.zeros((), dtype)
        k, second_ok = jnp.zeros((), jnp.int32), jnp.ones((), bool)

    # gradient against central differences (N&W §8.1)
    if check_gradient:
        h = fd_step(dtype) * xs
        D = random_directions(d_key, num_dirs, n, dtype)
        room = jnp.minimum(x - lower, upper - x)
        D = jnp.where(room[None, :] >= 2.0 * h * jnp.abs(D), D, 0.0)
        fd, err = differences(evaluate(f, stencil(x, D, h))[:, None], h)
        fd, ad = fd[:, 0], D @ g
        grad_err = jnp.abs(fd - ad)
        grad_tol = atol + 3.0 * jnp.max(err) + jnp.sqrt(rtol) * jnp.maximum(jnp.abs(fd), jnp.abs(ad))
        grad_ok = jnp.all(grad_err <= grad_tol)
    else:
        fd = ad = grad_err = grad_tol = jnp.full(num_dirs, jnp.nan, dtype)
        grad_ok = jnp.ones((), bool)

    oks = dict(
        stationarity_ok=stationarity <= stat_tol,
        feasibility_ok=violation <= feas_tol,
        complementarity_ok=complementarity <= feas_tol,
        multiplier_sign_ok=sign <= sign_tol,
        second_order_ok=second_ok,
        gradient_ok=grad_ok,
    )
    return OptimalityReport(
        passed=jnp.all(jnp.stack(list(oks.values()))),
        stationarity=stationarity, stationarity_tol=stat_tol,
        feasibility=violation, feasibility_tol=feas_tol,
        complementarity=complementarity, multiplier_sign=sign, multiplier_sign_tol=sign_tol,
        min_curvature=lo, curvature_tol=curv_tol, lanczos_steps=k,
        gradient_error=grad_err, gradient_tol=grad_tol, fd_derivative=fd, ad_derivative=ad,
        fun=fun, eq_multipliers=lam_eq, ineq_multipliers=lam_in, bound_multipliers=w,
        multipliers_estimated=estimated, active_ineq=act_in, active_lower=act_lo,
        active_upper=act_up,
        num_fun_evals=jnp.asarray(1 + (4 * num_dirs if check_gradient else 0)),
        num_hvp_evals=k.astype(jnp.int32) if second_order else jnp.zeros((), jnp.int32),
        **oks,
    )
