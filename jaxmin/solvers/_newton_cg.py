"""Line-search Newton-CG, Hessian-free (Nocedal & Wright, Alg. 7.1).

Notation: `x, f, g`; Hessian `H` seen only through products `H v`; Newton direction
`p` from `H p = -g` solved inexactly by truncated CG; step `alpha`.

A solve that would end on the `FTOL` or `PRECISION` test (first-order certificates, see
`_stopping`) first takes one certifying step: `H p = -g` solved accurately by CG. It
ends there, converged, only where the Newton decrement `-g.p / 2` (the decrease the
quadratic model still predicts, Boyd & Vandenberghe 2004 §9.5.1) is lost in f's
rounding and CG met no negative curvature. Otherwise the step is taken: the Newton step,
or a step along the direction `d` of negative curvature CG found (N&W §7.1; Moré &
Sorensen 1979), of length `|d.H d| / |d|^2` (Royer & Wright 2018, SIAM J. Optim.
28(2)), with the sign making it a descent direction, so a saddle point that is
stationary to the dtype's precision is left rather than called a minimum; and where
that step fails while the model predicts a decrease above f's rounding, the solve has
stalled (`STAGNATED`: the dtype cannot follow a direction the Hessian says is flat).
"""

from typing import Optional

import jax
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Scalar

from .._solution import Reason
from .._typing import ScalarLike, Vector
from ..linear import AbstractLinearSolver, TruncatedCG
from ..linear import Reason as LinearReason
from ..linesearch import AbstractLineSearch, Backtracking
from ._base import AbstractSolver, AbstractState
from ._search import check_options, search_step, start_point
from ._stopping import certified_end, certifies, keep_reason
from ._trust_cg import accurate_newton_direction


class _NewtonCGState(AbstractState):
    # at the current iterate
    f: Scalar
    g: Vector
    steepest_next: Bool[Array, ""]  # the last Newton step failed: retry along -g
    pending: Int[Array, ""]  # FTOL/PRECISION met: this step certifies it (RUNNING: none)
    flat_steps: Int[Array, ""]  # consecutive steps that left f unchanged
    # bookkeeping
    reason: Int[Array, ""]
    alpha: Scalar
    ls_evals: Int[Array, ""]
    cg_steps: Int[Array, ""]  # Hessian-vector products of the last step
    num_fun_evals: Int[Array, ""]
    num_hvp_evals: Int[Array, ""]


def hvp(fn, x: Vector, args: tuple):
    """`v -> H(x) v` by forward-over-reverse differentiation, linearised once at `x`
    so every product reuses the gradient's forward pass."""
    _, product = jax.linearize(lambda z: jax.grad(fn)(z, *args), x)
    return product


class NewtonCG(AbstractSolver[_NewtonCGState]):
    """Line-search Newton-CG (Nocedal & Wright, Alg. 7.1), never forming a Hessian.

    Each step solves `H p = -g` by `linear_solver` with Hessian-vector products from
    forward-over-reverse differentiation. The default `TruncatedCG` stops early by an
    Eisenstat-Walker forcing term (superlinear convergence) and at negative curvature
    (Steihaug), so `p` is always a descent direction, also away from convexity: a
    start at a saddle point moves off it. Where CG stops at negative curvature, the
    step follows that direction instead when the model predicts more decrease there
    (Moré & Sorensen 1979; Royer & Wright 2018). A step whose search fails is retried
    once along steepest descent before the solve ends (see `LBFGS` for the statuses).
    Before ending on the `FTOL` or `PRECISION` test the solve takes one certifying step
    (CG solved accurately): it ends converged only where the Newton decrement is lost in
    f's rounding and the Hessian showed no negative curvature, so neither a saddle point
    nor a valley too flat for the dtype is reported as a minimum (the latter ends
    `STAGNATED`, advising float64 or rescaling).

    Choose it over `LBFGS` for ill-conditioned problems (where L-BFGS needs
    thousands of steps and Newton a handful), for starts near saddle points, and when
    a Hessian-vector product costs about as little as a gradient. Each step costs one
    gradient and a few Hessian-vector products (`sol.num_hvp_evals`).

    **Arguments:**

    - `linear_solver` (default `jm.linear.TruncatedCG()`): a `jm.linear` solver for
      the Newton system.
    - `linesearch` (default `jm.linesearch.Backtracking()`): an `AbstractLineSearch`;
      Newton's unit step is tried first.
    - `gtol` (default `1e-5`, in the units of the gradient: f per unit of x): stop when
      `max|g| <= gtol`.
    - `ftol` (default `None`; relative): as in `LBFGS`.

    **Example:**

    ```python
    def ill_conditioned(x):  # curvatures from 1 to 1e6
        return 0.5 * jnp.sum(jnp.logspace(0.0, 6.0, x.size) * (x - 1.0) ** 2)

    sol = jm.minimize(ill_conditioned, jnp.zeros(50), jm.NewtonCG())
    print(sol.num_steps, sol.num_hvp_evals)
    ```
    """

    linear_solver: AbstractLinearSolver = TruncatedCG()
    linesearch: AbstractLineSearch = Backtracking()
    gtol: ScalarLike = 1e-5
    ftol: Optional[ScalarLike] = None

    def __check_init__(self):
        check_options(self, self.gtol, self.linesearch)
        if not isinstance(self.linear_solver, AbstractLinearSolver):
            raise TypeError("`NewtonCG(linear_solver=...)` must be a `jm.linear` solver.")

    def init(self, fn, x, args, constraints=None):
        f, g, reason = start_point(fn, x, args)
        zero_i = jnp.array(0, jnp.int32)
        return _NewtonCGState(
            f=f, g=g, steepest_next=jnp.array(False), pending=zero_i, flat_steps=zero_i,
            reason=reason, alpha=jnp.zeros((), x.dtype), ls_evals=zero_i, cg_steps=zero_i,
            num_fun_evals=jnp.array(1, jnp.int32), num_hvp_evals=zero_i,
        )

    def step(self, fn, x, state, args, constraints=None):
        f, g = state.f, state.g
        certify = state.pending != Reason.RUNNING
        steepest = -g / jnp.linalg.norm(g)
        matvec = hvp(fn, x, args)

        def newton_direction(_):
            solution = self.linear_solver.solve(matvec, -g)
            return solution.x, solution.num_steps, solution.reason

        def no_solve(_):
            return steepest, jnp.array(0, jnp.int32), jnp.array(LinearReason.CONVERGED, jnp.int32)

        p, cg_steps, cg_reason = lax.cond(state.steepest_next | certify, no_solve, newton_direction, None)
        # the quadratic model's decrease at a CG iterate p is -g.p / 2
        predicted = -0.5 * jnp.dot(g, p)
        # a stop to certify, or CG stopped at negative curvature: CG solved accurately,
        # stepping along negative curvature where the model predicts more decrease
        # there (Moré & Sorensen 1979)
        curved = ~state.steepest_next & (cg_reason == LinearReason.NEGATIVE_CURVATURE)
        q, q_steps, q_predicted = accurate_newton_direction(matvec, g, certify | curved)
        use_q = certify | (curved & (q_predicted > predicted))
        p, predicted = jnp.where(use_q, q, p), jnp.where(use_q, q_predicted, predicted)
        newton = (certify | ~state.steepest_next) & (predicted > 0)  # NaN predictions fall back too
        p, predicted = jnp.where(newton, p, steepest), jnp.where(newton, predicted, jnp.inf)
        cg_steps = cg_steps + q_steps
        # linearising the gradient at x re-evaluates it once: counted as an evaluation
        linearised = jnp.array(1, jnp.int32)
        certified = certifies(state.pending, predicted, f, x)
        step = search_step(self.linesearch, fn, args, x, f, g, p, predicted, state.flat_steps,
                           retry_possible=newton & ~certify, ftol=self.tolerance_ftol(x),
                           model_exact=certify, certified=certified)
        reason, pending = certified_end(certified, state.pending, step.reason)
        new_state = _NewtonCGState(
            f=step.f, g=step.g,
            steepest_next=step.failed & ~certify,
            pending=pending,
            flat_steps=step.flat_steps,
            reason=keep_reason(state.reason, reason),
            alpha=step.alpha, ls_evals=step.ls_evals,
            cg_steps=cg_steps,
            num_fun_evals=state.num_fun_evals + linearised + step.ls_evals,
            num_hvp_evals=state.num_hvp_evals + cg_steps,
        )
        return step.x, new_state
