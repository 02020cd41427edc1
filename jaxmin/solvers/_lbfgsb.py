"""L-BFGS-B: limited-memory BFGS with bounds (Byrd, Lu, Nocedal & Zhu 1995; Zhu, Byrd,
Lu & Nocedal 1997, Algorithm 778; Morales & Nocedal 2011).

One iteration: the generalised Cauchy point along the projected-gradient path,
minimisation of the quadratic model over the variables still free there (`_cauchy.py`),
then a Moré–Thuente search along `d = x_bar - x` capped at the largest feasible step.
Every trial point is clipped into the box, so the objective is never evaluated outside
it. The compact representation of the model (`_compact.py`) is kept up to date by one
row and column per step, as in the Fortran code, instead of being rebuilt.

Notation: `x, f, g`; direction `d`; step `alpha`; pairs `s = x+ - x`, `y = g+ - g`;
`theta = y.y / s.y`; bounds `lower`, `upper`; projected gradient `P(x - g) - x`.
"""

from typing import ClassVar, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Scalar

from .._constraints import Constraints
from .._misc import eps, max_norm
from .._typing import ScalarLike, Vector
from ..linesearch import MoreThuente
from ..linesearch._more_thuente import STPMAX, more_thuente_loop
from ._base import AbstractSolver, AbstractState
from ._cauchy import cauchy_point, max_step, subspace_point
from ._compact import Memory, add_pair, compact, empty_memory, update_free
from ._search import check_options, start_point
from ._stopping import end_step, keep_reason, relative_optimality


class _LBFGSBState(AbstractState):
    # at the current iterate
    f: Scalar
    g: Vector
    pg: Vector  # the projected gradient step P(x - g) - x
    memory: Memory  # the (s, y) pairs and their inner products
    first: Bool[Array, ""]  # no step taken yet
    flat_steps: Int[Array, ""]  # consecutive steps that left f unchanged
    # bookkeeping
    reason: Int[Array, ""]
    alpha: Scalar
    ls_evals: Int[Array, ""]
    num_fun_evals: Int[Array, ""]
    num_hvp_evals: Int[Array, ""]


class _BoxSearch(eqx.Module):
    """The outcome of the search along `d`: the new iterate (the old one if rejected)."""

    x: Vector
    f: Scalar
    g: Vector
    alpha: Scalar
    accepted: Bool[Array, ""]
    trial_f: Scalar  # f at the search's last trial (f itself without descent)
    num_evals: Int[Array, ""]


def _require_bounds(constraints: Optional[Constraints]) -> Constraints:
    if constraints is None or not constraints.has_bounds:
        raise ValueError(
            "`LBFGSB` needs bounds: pass `bounds=(lower, upper)` to `jm.minimize`, or a "
            "`Constraints(lower=..., upper=...)` to `init`/`step`; without bounds use `jm.LBFGS`."
        )
    return constraints


class LBFGSB(AbstractSolver[_LBFGSBState]):
    """L-BFGS-B: limited-memory BFGS within bounds `lower <= x <= upper` (Byrd, Lu,
    Nocedal & Zhu 1995; Zhu et al. 1997, Algorithm 778; Morales & Nocedal 2011).

    Use it for smooth objectives with simple bounds, e.g.
    `jm.minimize(fn, x0, jm.LBFGSB(), bounds=(lower, upper))`; `jm.LBFGS()` given
    `bounds=` runs this solver with the same `history_size`, `gtol` and `ftol`. Each
    iteration finds the generalised Cauchy point along the projected-gradient path,
    minimises the limited-memory model over the variables still free there, and
    searches along the result with Moré–Thuente, capped at the box. Iterates and trial
    points never leave the box. It needs bounds (`init`/`step` take a `Constraints`
    with `lower` and `upper`).

    **Arguments:**

    - `history_size` (default `10`): number of `(s, y)` pairs kept.
    - `linesearch` (default `jm.linesearch.MoreThuente()`): a
      `jm.linesearch.MoreThuente` (L-BFGS-B's search, its constants free to choose);
      no other search knows how to stop at the box.
    - `gtol` (default `1e-5`, in the units of the gradient: f per unit of x): stop when the projected gradient
      `max|P(x - g) - x| <= gtol`.
    - `ftol` (default `None`; relative, dimensionless): as for `jm.LBFGS` (SciPy L-BFGS-B's `ftol`, guarded by the relative
      projected gradient; see `solvers/_stopping.py`). `None`: `eps / 4` of the dtype.

    **Example:**

    ```python
    def rosenbrock(x):
        return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    upper = jnp.array([2.0, 2.0, 0.5, 2.0])
    sol = jm.minimize(rosenbrock, jnp.zeros(4), jm.LBFGSB(), bounds=(-1.0, upper))
    print(sol.x, sol.success)   # x[2] rests on its upper bound 0.5
    ```
    """

    history_size: int = eqx.field(default=10, static=True)
    linesearch: MoreThuente = MoreThuente()
    gtol: ScalarLike = 1e-5
    ftol: Optional[ScalarLike] = None
    takes_bounds: ClassVar[bool] = True

    def __check_init__(self):
        if not isinstance(self.history_size, int) or self.history_size < 1:
            raise ValueError("`LBFGSB(history_size=...)` must be a positive int.")
        check_options(self, self.gtol, self.linesearch)
        if not isinstance(self.linesearch, MoreThuente):
            raise TypeError(
                f"`LBFGSB(linesearch=...)` must be a `jm.linesearch.MoreThuente` (the search "
                f"L-BFGS-B caps at the box); got {type(self.linesearch).__name__}."
            )

    def warm_state(self, fresh, old):
        """A warm start keeps the curvature pairs and their inner products (the free
        set they were reduced to travels with them)."""
        return eqx.tree_at(lambda s: (s.memory, s.first), fresh, (old.memory, old.first))

    def init(self, fn, x, args, constraints: Optional[Constraints] = None) -> _LBFGSBState:
        box = _require_bounds(constraints)
        f, g, reason = start_point(fn, x, args)
        zero = jnp.zeros((), x.dtype)
        return _LBFGSBState(
            f=f, g=g, pg=box.project(x - g) - x,
            memory=empty_memory(self.history_size, x),
            first=jnp.array(True), flat_steps=jnp.array(0, jnp.int32), reason=reason,
            alpha=zero, ls_evals=jnp.array(0, jnp.int32),
            num_fun_evals=jnp.array(1, jnp.int32), num_hvp_evals=jnp.array(0, jnp.int32),
        )

    def step(self, fn, x, state: _LBFGSBState, args, constraints: Optional[Constraints] = None):
        box = _require_bounds(constraints)
        f, g, memory = state.f, state.g, state.memory
        b = compact(memory)
        cp = cauchy_point(x, g, box.lower, box.upper, b, empty=memory.k == 0)
        memory = update_free(memory, cp.free)
        # with no pairs the Cauchy point already minimises the model (B = theta I)
        x_sub = subspace_point(x, g, box.lower, box.upper, b, cp, memory.free_gram)
        x_bar = jnp.where(memory.k > 0, x_sub, cp.x)
        d = x_bar - x
        gd = jnp.dot(g, d)
        search = self._search(fn, args, x, f, g, d, x_bar, state.first, box)
        pg = box.project(search.x - search.g) - search.x
        end = end_step(
            x=x, f=f, f_new=search.f, accepted=search.accepted, moved=max_norm(search.x - x),
            predicted=-(gd + 0.5 * b.curvature(d)),
            at_precision=max_norm(d) <= 100 * eps(x) * max_norm(x), retry_possible=memory.k > 0,
            trial_f=search.trial_f, optimality=relative_optimality(pg, search.x),
            flat_steps=state.flat_steps, ftol=self.tolerance_ftol(x),
        )
        # a failure resets the memory and retries from the Cauchy step, unless it was one
        memory = add_pair(memory, search.x - x, search.g - g, g, end.failed)
        new_state = _LBFGSBState(
            f=search.f, g=search.g, pg=pg, memory=memory, first=jnp.array(False),
            flat_steps=end.flat_steps, reason=keep_reason(state.reason, end.reason),
            alpha=search.alpha, ls_evals=search.num_evals,
            num_fun_evals=state.num_fun_evals + search.num_evals,
            num_hvp_evals=state.num_hvp_evals,
        )
        return search.x, new_state

    def _search(self, fn, args, x, f, g, d, x_bar, first, box: Constraints) -> _BoxSearch:
        """Moré–Thuente along `d` from `x`, capped at the box; a decrease that misses
        the Wolfe conditions is still accepted (as for the unbounded solvers)."""
        lower, upper = box.lower, box.upper
        descent = jnp.dot(g, d) < 0
        # step cap: the largest feasible step (>= 1, since x + d = x_bar is feasible); on
        # the first iteration L-BFGS-B caps it at 1 when some bound is finite and starts
        # from 1/|d| unless every variable has both bounds (BLNZ §6; Zhu et al. 1997)
        bounded = jnp.isfinite(lower) | jnp.isfinite(upper)
        constrained, boxed = jnp.any(bounded), jnp.all(jnp.isfinite(lower) & jnp.isfinite(upper))
        cap = jnp.minimum(jnp.maximum(max_step(x, d, lower, upper), 1.0), STPMAX)
        cap = jnp.where(first & constrained, 1.0, cap).astype(x.dtype)
        d_norm = jnp.linalg.norm(d)
        stp0 = jnp.where(first & ~boxed, jnp.minimum(1 / jnp.where(d_norm > 0, d_norm, 1.0), cap), 1.0)

        def point(alpha):
            # x_bar itself at alpha = 1; any other trial clipped, so rounding never leaves the box
            return jnp.where(alpha == 1, x_bar, jnp.clip(x + alpha * d, lower, upper))

        f_and_g = lambda z: jax.value_and_grad(fn)(z, *args)
        d_search = jnp.where(descent, d, 0.0)
        ls = more_thuente_loop(self.linesearch, f_and_g, point, f, g, d_search, stp0.astype(x.dtype), cap)
        # success: the last trial; failure: the best one (x itself if none decreased f)
        pick = lambda best, last: jnp.where(ls.converged, last, best)
        f_new = pick(ls.fx, ls.f)
        accept = descent & (ls.converged | (f_new < f))
        return _BoxSearch(
            x=jnp.where(accept, pick(ls.xx, ls.x), x), f=jnp.where(accept, f_new, f),
            g=jnp.where(accept, pick(ls.gx, ls.g), g), alpha=pick(ls.stx, ls.a), accepted=accept,
            trial_f=jnp.where(descent, f_new, f), num_evals=ls.n,
        )

    def optimality_norm(self, state: _LBFGSBState) -> Scalar:
        return max_norm(state.pg)  # max|P(x - g) - x|

    def relative_optimality(self, x: Vector, state: _LBFGSBState) -> Scalar:
        return relative_optimality(state.pg, x)

    def optimality_label(self, state: _LBFGSBState) -> str:
        del state
        return "|pg|inf"

    def implicit_system(self, x: Vector, state: _LBFGSBState, fn, args, constraints: Constraints):
        """Optimality conditions with the active bounds frozen (at the solution, a bound
        is active where `x` sits on it and the gradient pushes outward; `lower == upper`
        is always active):

            r(z) = D grad f(D z + (1 - D) b) + (1 - D)(z - b),

        `D` the free mask, `b` the active bound value. Active coordinates follow their
        bound (zero derivative with respect to `fn`'s parameters); free ones solve the
        reduced Hessian system. The Jacobian `D H D + (1 - D)` is symmetric, so CG applies.
        """
        g = state.g
        at_lower = (x <= constraints.lower) & ((g > 0) | (constraints.lower == constraints.upper))
        at_upper = (x >= constraints.upper) & (g < 0) & ~at_lower
        free = ~(at_lower | at_upper)

        def residual(z, fn, args, constraints):
            b = jnp.where(at_lower, constraints.lower, jnp.where(at_upper, constraints.upper, 0.0))
            z_fixed = jnp.where(free, z, b)
            return jnp.where(free, jax.grad(fn)(z_fixed, *args), z - b)

        return x, residual
