"""`AbstractSolver` and `AbstractState`: the contract every solver implements once.

A solver works on a flat 1-D `x` (`minimize` ravels pytrees) and an objective
`fn(x, *args)`. `minimize` owns the loop:

    state = solver.init(fn, x0, args)
    while not solver.terminate(state)[0]:
        x, state = solver.step(fn, x, state, args)

so a user can drive it by hand the same way.
"""

import abc
from typing import ClassVar, Generic, TypeVar

import equinox as eqx
import jax
from jaxtyping import Array, Bool, Int, PyTree, Scalar

from .._typing import Objective, Vector


class AbstractState(eqx.Module):
    """Fields every solver state carries: the loop carry and what `Solution` reports.

    - `f`, `g`: value and gradient at the current iterate.
    - `status`: `Status.CONVERGED` while no failure has happened, else the failure.
    - `num_fun_evals`, `num_hvp_evals`: running counts.
    - `alpha`, `ls_evals`: the last step size and line-search evaluations (verbose).
    """

    f: eqx.AbstractVar[Scalar]
    g: eqx.AbstractVar[Vector]
    status: eqx.AbstractVar[Int[Array, ""]]
    num_fun_evals: eqx.AbstractVar[Int[Array, ""]]
    num_hvp_evals: eqx.AbstractVar[Int[Array, ""]]
    alpha: eqx.AbstractVar[Scalar]
    ls_evals: eqx.AbstractVar[Int[Array, ""]]


_State = TypeVar("_State", bound=AbstractState)


class AbstractSolver(eqx.Module, Generic[_State]):
    """A minimisation method: hyperparameters as fields, one iteration as `step`.

    Subclasses set the class flags `takes_bounds` and `takes_constraints` when they
    accept `bounds=` and `eq=`/`ineq=`; `minimize` rejects them otherwise.
    """

    gtol: eqx.AbstractVar[float]
    takes_bounds: ClassVar[bool] = False
    takes_constraints: ClassVar[bool] = False

    @abc.abstractmethod
    def init(self, fn: Objective, x: Vector, args: tuple) -> _State:
        """The state at `x` (evaluates `fn` there)."""

    @abc.abstractmethod
    def step(self, fn: Objective, x: Vector, state: _State, args: tuple) -> tuple[Vector, _State]:
        """One iteration: the next iterate and state."""

    @abc.abstractmethod
    def terminate(self, state: _State) -> tuple[Bool[Array, ""], Int[Array, ""]]:
        """`(done, status)`: stop now, and why (`status` is meaningful once done)."""

    def residual(self, x: Vector, fn: Objective, args: PyTree) -> Vector:
        """The optimality residual, zero at a solution: the gradient, for
        unconstrained solvers (implicit differentiation solves with its Jacobian)."""
        return jax.grad(fn)(x, *args)
