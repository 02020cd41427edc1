"""Dense BFGS with a line search (Nocedal & Wright, Alg. 6.1).

Notation: `x, f, g`; inverse-Hessian approximation `H`; direction `p = -H g`; step
`alpha`; pair `s = x+ - x`, `y = g+ - g`, `rho = 1 / s.y`.
"""

from typing import Optional

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, Scalar

from .._misc import eps
from .._typing import ScalarLike, Vector
from ..linesearch import AbstractLineSearch, Zoom
from ._base import AbstractSolver, AbstractState
from ._search import check_options, search_step, start_point
from ._stopping import keep_reason


class _BFGSState(AbstractState):
    # at the current iterate
    f: Scalar
    g: Vector
    # the inverse-Hessian approximation, valid when `updates > 0` (else H0 = I / |g|)
    H: Float[Array, "n n"]
    updates: Int[Array, ""]  # pairs applied since the last reset
    flat_steps: Int[Array, ""]  # consecutive steps that left f unchanged
    # bookkeeping
    reason: Int[Array, ""]
    alpha: Scalar
    ls_evals: Int[Array, ""]
    num_fun_evals: Int[Array, ""]
    num_hvp_evals: Int[Array, ""]


def bfgs_update(H: Float[Array, "n n"], s: Vector, y: Vector, rho: Scalar) -> Float[Array, "n n"]:
    """`(I - rho s y^T) H (I - rho y s^T) + rho s s^T` (N&W eq. 6.17), expanded so it
    costs two rank-one terms and one product `H y`."""
    Hy = H @ y
    return H - rho * (jnp.outer(s, Hy) + jnp.outer(Hy, s)) + (rho * rho * jnp.dot(y, Hy) + rho) * jnp.outer(s, s)


class BFGS(AbstractSolver[_BFGSState]):
    """Dense BFGS with a line search (Nocedal & Wright, Alg. 6.1): the inverse Hessian
    `H` as an `n x n` matrix, updated by the BFGS formula each step.

    Choose it over `LBFGS` for small `n` (up to a few hundred), and for batches of many
    small problems under `vmap`: one matrix-vector product replaces L-BFGS's two-loop
    recursion. Memory and work per step grow as `n^2`.

    The first step is steepest descent with `H0 = I` (N&W §6.1), its length capped at
    1 (`H0 = I / max(|g|, 1)`, the first step of SciPy's BFGS; `LBFGS` takes a unit
    step there, as L-BFGS-B does); the first step after a reset is steepest descent of
    unit length. Before the first update `H0` is rescaled to `(s.y / y.y) I` (N&W eq.
    6.20). A pair with
    `s.y <= eps |s| |y|` is skipped, keeping `H` positive definite. A failed step (no
    decrease found, or no change of f and x beyond rounding) resets `H` and retries
    along steepest descent; a failure from steepest descent ends the solve, judged by
    the stopping rules of `solvers/_stopping.py` exactly as for `LBFGS`.

    **Arguments:**

    - `linesearch` (default `jm.linesearch.Zoom()`): an `AbstractLineSearch` (strong
      Wolfe keeps `s.y > 0`).
    - `gtol` (default `1e-5`, in the units of the gradient: f per unit of x): stop when
      `max|g| <= gtol`.
    - `ftol` (default `None`: `eps / 4` of the dtype): the relative-decrease test and
      precision level, as in `LBFGS`.

    **Example:**

    ```python
    def rosenbrock(x):
        return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    sol = jm.minimize(rosenbrock, jnp.zeros(10), jm.BFGS())
    ```
    """

    linesearch: AbstractLineSearch = Zoom()
    gtol: ScalarLike = 1e-5
    ftol: Optional[ScalarLike] = None

    def __check_init__(self):
        check_options(self, self.gtol, self.linesearch)

    def init(self, fn, x, args, constraints=None):
        f, g, reason = start_point(fn, x, args)
        zero_i = jnp.array(0, jnp.int32)
        return _BFGSState(
            f=f, g=g, H=jnp.eye(x.shape[0], dtype=x.dtype), updates=zero_i, flat_steps=zero_i,
            reason=reason, alpha=jnp.zeros((), x.dtype), ls_evals=zero_i,
            num_fun_evals=jnp.array(1, jnp.int32), num_hvp_evals=zero_i,
        )

    def warm_state(self, fresh, old):
        """A warm start keeps the inverse-Hessian approximation (positive definite, a
        guess for the changed problem that the next updates correct)."""
        return eqx.tree_at(lambda s: (s.H, s.updates), fresh, (old.H, old.updates))

    def implicit_preconditioner(self, state):
        """`v -> H v` for the inverse-Hessian approximation `H` of the final state (the
        identity before any update): the preconditioner of the implicit rule's CG
        (Morales & Nocedal, SIAM J. Optim. 10(4), 2000)."""
        return lambda v: jnp.where(state.updates > 0, state.H @ v, v)

    def step(self, fn, x, state, args, constraints=None):
        f, g, updates = state.f, state.g, state.updates
        # the first step: H0 = I (N&W §6.1) capped at unit length; after a reset, a unit step
        # (|g| < 1 tested as g.g < 1, leaving -g / |g| compiled as before: one rounding)
        short = (state.num_fun_evals == 1) & (jnp.dot(g, g) < 1)
        steepest = jnp.where(short, -g, -g / jnp.linalg.norm(g))
        quasi_newton = -(state.H @ g)
        slope = jnp.dot(g, quasi_newton)
        # rounding can cost descent: fall back to steepest descent and forget
        use_h = (updates > 0) & (slope < 0)
        p = jnp.where(use_h, quasi_newton, steepest)
        updates = jnp.where(use_h, updates, 0)
        # the model's decrease -g.p / 2 (inf with no curvature information yet)
        predicted = jnp.where(use_h, -0.5 * slope, jnp.inf)
        step = search_step(self.linesearch, fn, args, x, f, g, p, predicted, state.flat_steps,
                           retry_possible=updates > 0, ftol=self.tolerance_ftol(x))
        s, y = step.x - x, step.g - g
        sy, yy = jnp.dot(s, y), jnp.dot(y, y)
        # curvature condition s.y > eps |s| |y| (N&W §6.1), else skip the pair
        store = ~step.failed & (sy > eps(x) * jnp.sqrt(jnp.dot(s, s) * yy))
        # before the first update, H0 = (s.y / y.y) I (N&W eq. 6.20)
        H0 = jnp.where(updates > 0, state.H, (sy / jnp.where(store, yy, 1.0)) * jnp.eye(x.shape[0], dtype=x.dtype))
        H = jnp.where(store, bfgs_update(H0, s, y, 1 / jnp.where(store, sy, 1.0)), state.H)
        new_state = _BFGSState(
            f=step.f, g=step.g, H=H,
            updates=jnp.where(step.failed, 0, updates + store.astype(jnp.int32)),
            flat_steps=step.flat_steps,
            reason=keep_reason(state.reason, step.reason),
            alpha=step.alpha, ls_evals=step.ls_evals,
            num_fun_evals=state.num_fun_evals + step.ls_evals,
            num_hvp_evals=state.num_hvp_evals,
        )
        return step.x, new_state
