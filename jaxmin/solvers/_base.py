"""`AbstractSolver` and `AbstractState`: the contract every solver implements once.

A solver works on a flat 1-D `x` (`minimize` ravels pytrees) and an objective
`fn(x, *args)`. Every solver's `init` and `step` take the same arguments, the last a
`Constraints` (bounds and constraint functions; empty, `Constraints()`, where the
problem has none), and `minimize` owns the loop:

    state = solver.init(fn, x0, args, constraints)
    while not solver.terminate(state)[0]:
        x, state = solver.step(fn, x, state, args, constraints)

so a user can drive it by hand the same way (`constraints` may be left out for an
unconstrained solver). Solvers that use bounds or constraint functions say so with the
class flags `takes_bounds` and `takes_constraints`; `minimize` rejects them elsewhere,
and projects `x0` into the bounds first.
"""

import abc
from typing import Callable, ClassVar, Generic, Optional, TypeVar

import equinox as eqx
import jax
from jaxtyping import Array, Bool, Int, Scalar

from .._constraints import Constraints
from .._misc import max_norm
from .._typing import Objective, ScalarLike, Vector
from . import _stopping as stopping
from ..linear import CG, AbstractLinearSolver

# built once (an immutable module): building one costs ~0.1 ms, a tenth of a small solve
_CG = CG()


class AbstractState(eqx.Module):
    """Fields every solver state carries: the loop carry and what `Solution` reports.

    - `f`, `g`: value and gradient at the current iterate.
    - `reason`: a `Reason`: `RUNNING` while the solve goes on, else why a step ended
      it (`_stopping`); `status` is the `Status` that reason belongs to.
    - `num_fun_evals`, `num_hvp_evals`: running counts.
    - `alpha`, `ls_evals`: the last step size and line-search evaluations (verbose).
    """

    f: eqx.AbstractVar[Scalar]
    g: eqx.AbstractVar[Vector]
    reason: eqx.AbstractVar[Int[Array, ""]]
    num_fun_evals: eqx.AbstractVar[Int[Array, ""]]
    num_hvp_evals: eqx.AbstractVar[Int[Array, ""]]
    alpha: eqx.AbstractVar[Scalar]
    ls_evals: eqx.AbstractVar[Int[Array, ""]]


_State = TypeVar("_State", bound=AbstractState)


class AbstractSolver(eqx.Module, Generic[_State]):
    """A minimisation method: hyperparameters as fields, one iteration as `step`.

    Subclasses set the class flags `takes_bounds` and `takes_constraints` when they
    accept `bounds=` and `eq=`/`ineq=`; `minimize` rejects them otherwise.

    Every solver has the stopping tolerances `gtol` and `ftol` (`None`: `eps / 4` of
    the solve's dtype); `_stopping` says what they mean.
    """

    gtol: eqx.AbstractVar[ScalarLike]
    ftol: eqx.AbstractVar[Optional[ScalarLike]]
    takes_bounds: ClassVar[bool] = False
    takes_constraints: ClassVar[bool] = False
    takes_residuals: ClassVar[bool] = False  # least-squares solvers: `fn` returns residuals

    @abc.abstractmethod
    def init(self, fn: Objective, x: Vector, args: tuple,
             constraints: Optional[Constraints] = None) -> _State:
        """The state at `x` (evaluates `fn` there)."""

    @abc.abstractmethod
    def step(self, fn: Objective, x: Vector, state: _State, args: tuple,
             constraints: Optional[Constraints] = None) -> tuple[Vector, _State]:
        """One iteration: the next iterate and state."""

    def terminate(self, state: _State) -> tuple[Bool[Array, ""], Int[Array, ""]]:
        """For solver authors: `(done, status)`: stop now, and why (`status` is meaningful once done)."""
        done, status, _ = self.verdict(state)
        return done, status

    def verdict(self, state: _State) -> tuple[Bool[Array, ""], Int[Array, ""], Int[Array, ""]]:
        """For solver authors: `(done, status, reason)`: `terminate` with the `Reason` (for solver authors:
        override to add conditions, as SQP does for the constraint violation)."""
        return stopping.terminate(self.optimality_norm(state), state.f, state.reason, self.gtol)

    def with_bounds(self) -> "AbstractSolver":
        """For solver authors: The solver `minimize` runs when given `bounds=`: itself by default (then it
        must set `takes_bounds`); `jm.LBFGS` returns its L-BFGS-B, `jm.LBFGSB`."""
        return self

    def multipliers(self, state: _State) -> Optional[tuple]:
        """For solver authors: `Solution.multipliers`: the `(eq, ineq)` Lagrange multipliers a constrained
        solver's state holds at the end of the solve; `None` for the others."""
        del state
        return None

    def warm_state(self, fresh: _State, old: _State) -> _State:
        """For solver authors: For warm starts (`minimize(warm_start=...)`) on a changed problem: `fresh`, the
        state `init` made at the new start, with the parts of `old`'s memory that stay
        valid there (for solver authors; default: none, a cold start). The driver adds
        up the counts and keeps `old` whole where the problem did not change."""
        del old
        return fresh

    def fixed_step(self) -> bool:
        """For solver authors: Whether steps have a fixed (or scheduled) length with no line search: such a
        solve whose f rises and stalls has too large a learning rate."""
        return False

    def tolerance_ftol(self, like: Array) -> Array:
        """For solver authors: `ftol` in `like`'s dtype, its default filled in."""
        return stopping.default_ftol(self.ftol, like)

    def implicit_system(
        self, x: Vector, state: _State, fn: Objective, args: tuple, constraints: Optional[Constraints]
    ) -> tuple[Vector, Callable]:
        """For solver authors: The optimality conditions at a solution, for implicit differentiation.

        Returns `(z, residual)`: the unknowns `z` at the solution (a 1-D vector whose
        first `x.size` entries are `x`, followed by e.g. multipliers) and a function
        `residual(z, fn, args, constraints)` that vanishes there. The implicit rule
        differentiates `residual` with respect to `fn`, `args` and `constraints` and
        solves with its Jacobian in `z` (`implicit_linear_solver`). `x` and `state`
        are the solve's primal output, free to use as constants (e.g. an active set).
        Unconstrained solvers: `z = x` and the residual is the gradient.
        """
        del state, constraints
        return x, lambda z, fn, args, constraints: jax.grad(fn)(z, *args)

    def implicit_state_tangent(self, t_state: _State, dz: Vector) -> _State:
        """For solver authors: The state's tangent given `dz`, the tangent of `implicit_system`'s unknowns
        (e.g. multipliers). `t_state` arrives with zeros and the envelope-theorem
        tangent of `f` filled in."""
        del dz
        return t_state

    def implicit_preconditioner(self, state: _State) -> Optional[Callable[[Vector], Vector]]:
        """For solver authors: `v -> M^{-1} v`, an approximation of the inverse of the
        implicit system's matrix (`implicit_system`'s Jacobian) that the final `state`
        already holds, such as a quasi-Newton inverse Hessian; or `None` (the default):
        none. The implicit rule preconditions its CG with it when asked to,
        `implicit_solver=jm.linear.CG(preconditioner="solver")` (Morales & Nocedal,
        SIAM J. Optim. 10(4), 2000: automatic preconditioning by quasi-Newton updating).
        It must be linear, symmetric and positive definite, and depend on `state` alone
        (CG ignores its derivatives). A state whose memory was reset (after a failed
        step) holds no curvature: return the identity there."""
        del state
        return None

    def objective(self, fn: Objective, x: Vector, args: tuple) -> Scalar:
        """For solver authors: f at `x` from the function the solver is handed: `fn(x, *args)` (a
        least-squares solver is handed residuals and returns `|r|^2 / 2`)."""
        return fn(x, *args)

    def implicit_linear_solver(self) -> AbstractLinearSolver:
        """For solver authors: The default `minimize(implicit_solver=...)`: CG, for the symmetric positive
        (semi)definite Hessian of an unconstrained minimum."""
        return _CG

    def optimality_norm(self, state: _State) -> Scalar:
        """For solver authors: The quantity `gtol` bounds (printed by `verbose=True`): `max|g|` here."""
        return max_norm(state.g)

    def relative_optimality(self, x: Vector, state: _State) -> Scalar:
        """For solver authors: The optimality measure relative to x's scale, which the precision guard of
        `_stopping` bounds: `max_i |g_i| max(|x_i|, 1)` here."""
        return stopping.relative_optimality(state.g, x)

    def optimality_label(self, state: _State) -> str:
        """For solver authors: The name `verbose=True` prints for `optimality_norm` (static)."""
        del state
        return "|g|inf"
