"""Line-search Newton-CG, Hessian-free (Nocedal & Wright, Alg. 7.1).

Notation: `x, f, g`; Hessian `H` seen only through products `H v`; Newton direction
`p` from `H p = -g` solved inexactly by truncated CG; step `alpha`.
"""

from typing import Optional

import jax
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Scalar

from .._typing import ScalarLike, Vector
from ..linear import AbstractLinearSolver, TruncatedCG
from ..linesearch import AbstractLineSearch, Backtracking
from ._base import AbstractSolver, AbstractState
from ._search import check_options, search_step, start_point
from ._stopping import keep_reason


class _NewtonCGState(AbstractState):
    # at the current iterate
    f: Scalar
    g: Vector
    steepest_next: Bool[Array, ""]  # the last Newton step failed: retry along -g
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
    start at a saddle point moves off it. A step whose search fails is retried once
    along steepest descent before the solve ends (see `LBFGS` for the statuses).

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
            f=f, g=g, steepest_next=jnp.array(False), flat_steps=zero_i,
            reason=reason, alpha=jnp.zeros((), x.dtype), ls_evals=zero_i, cg_steps=zero_i,
            num_fun_evals=jnp.array(1, jnp.int32), num_hvp_evals=zero_i,
        )

    def step(self, fn, x, state, args, constraints=None):
        f, g = state.f, state.g
        steepest = -g / jnp.linalg.norm(g)

        def newton_direction(_):
            solution = self.linear_solver.solve(hvp(fn, x, args), -g)
            return solution.x, solution.num_steps

        def steepest_direction(_):
            return steepest, jnp.array(0, jnp.int32)

        p, cg_steps = lax.cond(state.steepest_next, steepest_direction, newton_direction, None)
        # linearising the gradient at x re-evaluates it once: counted as an evaluation
        linearised = (~state.steepest_next).astype(jnp.int32)
        slope = jnp.dot(g, p)
        newton = ~state.steepest_next & (slope < 0)  # NaN slopes fall back too
        p = jnp.where(newton, p, steepest)
        # the quadratic model's decrease at a CG iterate p is -g.p / 2
        predicted = jnp.where(newton, -0.5 * slope, jnp.inf)
        step = search_step(self.linesearch, fn, args, x, f, g, p, predicted, state.flat_steps,
                           retry_possible=newton, ftol=self.tolerance_ftol(x))
        new_state = _NewtonCGState(
            f=step.f, g=step.g,
            steepest_next=step.failed,
            flat_steps=step.flat_steps,
            reason=keep_reason(state.reason, step.reason),
            alpha=step.alpha, ls_evals=step.ls_evals, cg_steps=cg_steps,
            num_fun_evals=state.num_fun_evals + linearised + step.ls_evals,
            num_hvp_evals=state.num_hvp_evals + cg_steps,
        )
        return step.x, new_state
