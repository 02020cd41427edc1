"""Limited-memory BFGS (Nocedal & Wright, Alg. 7.4-7.5), with first-order stops
certified by an accurate Newton step (see `LBFGS`).

Notation: `x, f, g`; direction `p`; step `alpha`; pairs `s = x+ - x`, `y = g+ - g`,
`rho = 1 / s.y`; initial inverse-Hessian scale `gamma`.
"""

from typing import Optional

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, Scalar

from .._constraints import Constraints
from .._misc import eps
from .._solution import Reason
from .._typing import ScalarLike, Vector
from ..linesearch import AbstractLineSearch, MoreThuente, Zoom
from ._base import AbstractSolver, AbstractState
from ._lbfgsb import LBFGSB
from ._search import check_options, search_step, start_point
from ._stopping import certified_end, certifies, keep_reason
from ._trust_cg import accurate_newton_direction, second_order_product


class _LBFGSState(AbstractState):
    # at the current iterate
    f: Scalar
    g: Vector
    # curvature memory: a ring buffer, the newest pair in row (k - 1) % m; rows whose
    # rho is 0 are empty and drop out of the two-loop recursion
    s_hist: Float[Array, "m n"]
    y_hist: Float[Array, "m n"]
    rho: Float[Array, " m"]
    k: Int[Array, ""]  # pairs stored since the last reset
    gamma: Scalar
    flat_steps: Int[Array, ""]  # consecutive steps that left f unchanged
    pending: Int[Array, ""]  # FTOL/PRECISION met: this step certifies it (RUNNING: none)
    # bookkeeping
    reason: Int[Array, ""]
    alpha: Scalar
    ls_evals: Int[Array, ""]
    num_fun_evals: Int[Array, ""]
    num_hvp_evals: Int[Array, ""]


def two_loop(g: Vector, s_hist, y_hist, rho, k, gamma: Scalar) -> Vector:
    """`H g` for the L-BFGS inverse Hessian `H` (N&W Alg. 7.4), `H0 = gamma I`.

    Pairs are visited newest first, row `(k - 1 - i) % m` on pass `i`, and oldest
    first on the way back. Empty rows have `rho = 0` and change nothing.
    """
    m = rho.shape[0]

    def backward(i, carry):
        q, a = carry
        j = (k - 1 - i) % m
        a_j = rho[j] * jnp.dot(s_hist[j], q)
        return q - a_j * y_hist[j], a.at[j].set(a_j)

    def forward(i, r):
        j = (k - m + i) % m
        b = rho[j] * jnp.dot(y_hist[j], r)
        return r + (a[j] - b) * s_hist[j]

    q, a = lax.fori_loop(0, m, backward, (g, jnp.zeros_like(rho)))
    return lax.fori_loop(0, m, forward, gamma * q)


def _no_bounds(constraints: Constraints | None) -> None:
    if constraints is not None and constraints.has_bounds:
        raise ValueError("`LBFGS` takes no bounds: use `jm.LBFGSB`, or `jm.LBFGS().with_bounds()`.")


class LBFGS(AbstractSolver[_LBFGSState]):
    """Limited-memory BFGS with a line search (Nocedal & Wright, Alg. 7.4-7.5).

    The default solver, and the first choice for smooth unconstrained problems of any
    size: it keeps `history_size` pairs of vectors (never an `n x n` matrix) and most
    steps cost one evaluation of f and its gradient. For small `n` or `vmap`ped
    batches of small problems try `BFGS`; for ill-conditioned problems `NewtonCG`.

    **Example:**

    ```python
    def rosenbrock(x, a):
        return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (a - x[:-1]) ** 2)

    sol = jm.minimize(rosenbrock, jnp.zeros(100), jm.LBFGS(gtol=1e-6), args=(1.0,))
    print(sol.success, sol.num_steps, sol.num_fun_evals)
    ```

    The first step, and the first after a memory reset, is steepest descent scaled to
    unit length (`H0 = I / ||g||`); afterwards `H0 = gamma I` with
    `gamma = s.y / y.y` (N&W eq. 7.20). A pair with `s.y <= eps ||s|| ||y||` is skipped,
    keeping `H` positive definite. A step that fails (its line search found no
    decrease, or it changed neither f nor x beyond rounding) resets the memory; a
    failure from steepest descent, or one whose full step is within rounding of x,
    ends the solve, judged by the stopping rules of `solvers/_stopping.py`: converged
    at the attainable precision where the gradient is at the level f's precision
    allows, else `STAGNATED`, `NONFINITE` or `LINESEARCH_FAILED`.

    Those first-order tests cannot tell a minimum from a saddle point, nor from the
    floor of a valley too flat for the dtype (the L-BFGS model is positive definite and
    never samples such a direction). So before ending on the `FTOL` or `PRECISION`
    test the solve takes one certifying step, the accurate Newton step of
    `NewtonCG` (CG on Hessian-vector products, reverse over reverse; counted in
    `sol.num_hvp_evals`): it ends, converged, only where the Newton decrement is lost
    in f's rounding and CG met no negative curvature; otherwise it steps along the
    Newton step or the negative curvature (leaving a saddle, Moré & Sorensen 1979;
    Royer & Wright 2018) and carries on, and a step that then fails with the decrease
    still predicted above f's rounding ends `STAGNATED` (rescale, or solve in
    float64). The certificate costs a few Hessian-vector products at the end of a
    solve, and none where it ends on `gtol`.

    **Arguments:**

    - `history_size` (default `10`): number of `(s, y)` pairs kept; memory and work
      per step grow linearly with it.
    - `linesearch` (default `jm.linesearch.Zoom()`): an `AbstractLineSearch` (strong
      Wolfe keeps `s.y > 0`).
    - `gtol` (default `1e-5`, in the units of the gradient: f per unit of x): stop when `max|g| <= gtol`.
    - `ftol` (default `None`, meaning `eps / 4` of the solve's dtype; relative,
      dimensionless): stop when a step decreases f by at most `ftol * |f|` while the relative
      gradient `max_i |g_i| max(|x_i|, 1)` is at most `ftol^(1/3) max(|f|, 1)` (SciPy
      L-BFGS-B's `ftol`, guarded); the same guard judges a solve that can no longer
      decrease f (see `solvers/_stopping.py`). `None`: `eps / 4` of the dtype.

    **Bounds:** `minimize(fn, x0, jm.LBFGS(...), bounds=(lower, upper))` runs
    `jm.LBFGSB` (L-BFGS-B) built by `with_bounds()`: the same `history_size`, `gtol`
    and `ftol`, and a Moré–Thuente search (this solver's `linesearch` if it is one;
    L-BFGS-B's own in place of the default `Zoom()`; any other search is an error).
    `LBFGS` itself takes no bounds.
    """

    history_size: int = eqx.field(default=10, static=True)
    linesearch: AbstractLineSearch = Zoom()
    gtol: ScalarLike = 1e-5
    ftol: Optional[ScalarLike] = None

    def __check_init__(self):
        if not isinstance(self.history_size, int) or self.history_size < 1:
            raise ValueError("`LBFGS(history_size=...)` must be a positive int.")
        check_options(self, self.gtol, self.linesearch)

    def warm_state(self, fresh, old):
        """A warm start keeps the curvature pairs (each with `s.y > 0`, a valid guess
        of the changed problem's curvature that new pairs replace)."""
        keep = lambda s: (s.s_hist, s.y_hist, s.rho, s.k, s.gamma)  # noqa: E731
        return eqx.tree_at(keep, fresh, keep(old))

    def implicit_preconditioner(self, state):
        """`v -> H v` for the L-BFGS inverse Hessian `H` of the final state (two-loop
        recursion; the identity before any pair): the preconditioner of the implicit
        rule's CG (Morales & Nocedal, SIAM J. Optim. 10(4), 2000)."""
        gamma = jnp.where(state.k > 0, state.gamma, 1.0).astype(state.gamma.dtype)
        return lambda v: two_loop(v, state.s_hist, state.y_hist, state.rho, state.k, gamma)

    def with_bounds(self) -> LBFGSB:
        """L-BFGS-B with this solver's `history_size`, `gtol` and `ftol`: what
        `minimize` runs for `jm.LBFGS` given `bounds=`. Its search is `linesearch` when
        that is a `MoreThuente`, and L-BFGS-B's `MoreThuente()` in place of the default
        `Zoom()`; another search raises (L-BFGS-B's search must stop at the box)."""
        search = self.linesearch
        if not isinstance(search, MoreThuente):
            if not (type(search) is Zoom and eqx.tree_equal(search, Zoom()) is True):
                raise ValueError(
                    f"`jm.LBFGS(linesearch={type(search).__name__}(...))` with `bounds=`: L-BFGS-B "
                    "searches with Moré–Thuente capped at the box; pass "
                    "`linesearch=jm.linesearch.MoreThuente(...)` or leave the default."
                )
            search = MoreThuente()
        return LBFGSB(history_size=self.history_size, linesearch=search, gtol=self.gtol, ftol=self.ftol)

    def init(self, fn, x, args, constraints: Constraints | None = None):
        _no_bounds(constraints)
        f, g, reason = start_point(fn, x, args)
        m, n = self.history_size, x.shape[0]
        zero = jnp.zeros((), x.dtype)
        return _LBFGSState(
            f=f, g=g,
            s_hist=jnp.zeros((m, n), x.dtype), y_hist=jnp.zeros((m, n), x.dtype),
            rho=jnp.zeros(m, x.dtype), k=jnp.array(0, jnp.int32), gamma=zero,
            flat_steps=jnp.array(0, jnp.int32), pending=jnp.array(0, jnp.int32), reason=reason,
            alpha=zero, ls_evals=jnp.array(0, jnp.int32),
            num_fun_evals=jnp.array(1, jnp.int32), num_hvp_evals=jnp.array(0, jnp.int32),
        )

    def step(self, fn, x, state, args, constraints: Constraints | None = None):
        _no_bounds(constraints)
        f, g, k = state.f, state.g, state.k
        # H0 = I / ||g||: a unit first step, with no history to scale it
        g_norm = jnp.linalg.norm(g)
        gamma = jnp.where(k == 0, 1 / g_norm, state.gamma)
        p = -two_loop(g, state.s_hist, state.y_hist, state.rho, k, gamma)
        # rounding can cost descent; fall back to steepest descent and forget
        descent = jnp.dot(g, p) < 0
        p = jnp.where(descent, p, -g / g_norm)
        k = jnp.where(descent, k, 0)
        rho = jnp.where(descent, state.rho, 0.0)

        predicted = jnp.where(state.gamma > 0, 0.5 * state.gamma * g_norm**2, jnp.inf)
        # a first-order stop to certify: one accurate Newton step (see the class docstring)
        hessian_product = second_order_product(lambda z: jax.grad(fn)(z, *args), x)
        certify = (state.pending != Reason.RUNNING) & (hessian_product is not None)
        products = jnp.array(0, jnp.int32)
        certified = None  # (no second derivatives: no certificate)
        if hessian_product is not None:
            q, products, q_predicted = accurate_newton_direction(hessian_product, g, certify)
            certify_along = certify & (q_predicted > 0)  # (NaN: the L-BFGS step instead)
            p, predicted = jnp.where(certify_along, q, p), jnp.where(certify, q_predicted, predicted)
            certified = certifies(state.pending, predicted, f, x)
        # a failure resets the memory: the retry is steepest descent, unless it was one
        step = search_step(self.linesearch, fn, args, x, f, g, p, predicted, state.flat_steps,
                           retry_possible=(k > 0) & ~certify, ftol=self.tolerance_ftol(x),
                           model_exact=certify, certified=certified)
        reason, pending = step.reason, state.pending
        if certified is not None:
            reason, pending = certified_end(certified, state.pending, step.reason)
        s, y = step.x - x, step.g - g
        sy, yy, ss = jnp.dot(s, y), jnp.dot(y, y), jnp.dot(s, s)

        # curvature condition s.y > eps |s| |y| (N&W §7.2), else skip the pair
        store = ~step.failed & (sy > eps(x) * jnp.sqrt(ss * yy))
        row = k % self.history_size
        rho = rho.at[row].set(jnp.where(store, 1 / sy, rho[row]))
        rho = jnp.where(step.failed, 0.0, rho)
        s_hist = state.s_hist.at[row].set(jnp.where(store, s, state.s_hist[row]))
        y_hist = state.y_hist.at[row].set(jnp.where(store, y, state.y_hist[row]))
        new_state = _LBFGSState(
            f=step.f, g=step.g,
            s_hist=s_hist,
            y_hist=y_hist,
            rho=rho,
            k=jnp.where(step.failed, 0, k + store.astype(jnp.int32)),
            gamma=jnp.where(store, sy / yy, state.gamma),
            flat_steps=step.flat_steps,
            pending=pending,
            reason=keep_reason(state.reason, reason),
            alpha=step.alpha, ls_evals=step.ls_evals,
            num_fun_evals=state.num_fun_evals + step.ls_evals,
            num_hvp_evals=state.num_hvp_evals + products,
        )
        return step.x, new_state
