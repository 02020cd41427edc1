"""`Problem`: a minimisation problem with a known solution."""

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree


@dataclasses.dataclass(frozen=True)
class Problem:
    """`min fn(x, *args)` s.t. `eq(x, *args) = 0`, `ineq(x, *args) >= 0`, `bounds`,
    with a known minimiser.

    **Fields:**

    - `name`, `source`: what the problem is and where its solution comes from.
    - `fn`, `x0`, `args`, `bounds`, `eq`, `ineq`: as for `jm.minimize`.
    - `x_star`: the minimiser (shaped like `x0`), or `None` where it is not unique or
      not published; `f_star`: the optimal value.
    - `multipliers`: `(eq_mult, ineq_mult)` at `x_star` where known (jaxmin's sign
      convention `grad f = J_eq^T eq_mult + J_ineq^T ineq_mult`), else `None`.
    - `bound_multipliers`: `w = w_lower - w_upper` at `x_star`, flat (in
      `ravel_pytree` order), where known; `active_ineq`, `active_lower`,
      `active_upper`: the active set at `x_star` (flat bool arrays) where known.

    Exact up to the rounding of the data to its dtype: data built in float64 and cast
    to float32 moves `x_star` by about `eps32` times the problem's condition number.

    Use one to test a solver (yours or a configuration of jaxmin's) against a known
    answer: `problem.minimize(solver)` runs the solve, `problem.check(sol)` certifies
    it (`jm.testing.check_optimality`). `jm.testing.MGH_PROBLEMS` and the Hypothesis
    strategies of `jm.testing.strategies` provide them.

    **Example:**

    ```python
    problem = next(p for p in jm.testing.MGH_PROBLEMS if p.name == "rosenbrock")
    sol = problem.minimize(jm.LBFGS(gtol=1e-6))
    report = problem.check(sol, rtol=1e-4)
    assert report, report.why
    print(problem.f_star, float(sol.fun))
    ```
    """

    name: str
    fn: Callable
    x0: Any
    args: tuple = ()
    x_star: Any = None
    f_star: Optional[float] = None
    bounds: Optional[tuple] = None
    eq: Optional[Callable] = None
    ineq: Optional[Callable] = None
    multipliers: Optional[tuple] = None
    bound_multipliers: Any = None
    active_ineq: Any = None
    active_lower: Any = None
    active_upper: Any = None
    source: str = ""

    @property
    def n(self) -> int:
        return int(ravel_pytree(self.x0)[0].shape[0])

    @property
    def dtype(self):
        return ravel_pytree(self.x0)[0].dtype

    @property
    def kwargs(self) -> dict:
        """`args`, `eq`, `ineq` and `bounds` as keyword arguments of `jm.minimize`
        and `jm.testing.check_optimality`."""
        return dict(args=self.args, eq=self.eq, ineq=self.ineq, bounds=self.bounds)

    def minimize(self, solver=None, **kwargs):
        """`jm.minimize(fn, x0, solver, **self.kwargs, **kwargs)`."""
        from .._minimize import minimize
        from ..solvers import LBFGS

        return minimize(self.fn, self.x0, LBFGS() if solver is None else solver, **self.kwargs, **kwargs)

    def check(self, sol_or_x, **kwargs):
        """`jm.testing.check_optimality` of `sol_or_x` on this problem."""
        from ._optimality import check_optimality

        return check_optimality(self.fn, sol_or_x, **self.kwargs, **kwargs)

    def astype(self, dtype) -> "Problem":
        """The problem with every floating array (x0, args, bounds, x_star,
        multipliers) in `dtype`, as JAX arrays."""
        cast = lambda tree: jax.tree.map(lambda v: _cast(v, dtype), tree)  # noqa: E731
        return dataclasses.replace(
            self, x0=cast(self.x0), args=cast(self.args), x_star=cast(self.x_star),
            bounds=cast(self.bounds), multipliers=cast(self.multipliers),
            bound_multipliers=cast(self.bound_multipliers),
        )

    def as_tree(self) -> "Problem":
        """The problem on a dict `{"head": first half, "tail": second half as an (m, 1)
        column}` instead of a flat vector (`{"head": x}` for n = 1); `fn`, `eq` and
        `ineq` see the same flat vector."""
        if not (hasattr(self.x0, "ndim") and self.x0.ndim == 1):
            raise ValueError("`as_tree` needs a problem on a flat vector.")
        split = lambda v: _split(v, self.n)  # noqa: E731
        bounds = None if self.bounds is None else tuple(split(b) for b in self.bounds)
        on = lambda c: None if c is None else OnTree(c)  # noqa: E731
        return dataclasses.replace(
            self, name=self.name + "[tree]", fn=OnTree(self.fn), x0=split(self.x0),
            x_star=None if self.x_star is None else split(self.x_star), bounds=bounds,
            eq=on(self.eq), ineq=on(self.ineq),
        )


@dataclasses.dataclass(frozen=True)
class OnTree:
    """`fn` of a flat vector, called with a pytree that ravels to it. Equal wrappers of
    one `fn` compare equal, so a compiled solve is reused."""

    fn: Callable

    def __call__(self, x, *args):
        return self.fn(ravel_pytree(x)[0], *args)


def _cast(v, dtype):
    if isinstance(v, (float, np.floating)) or (
        hasattr(v, "dtype") and jnp.issubdtype(v.dtype, jnp.floating)
    ):
        return jnp.asarray(v, dtype)
    return v


def _split(v, n: int):
    if jnp.ndim(v) == 0:  # a scalar bound stays a scalar
        return v
    if n == 1:
        return {"head": v}
    k = (n + 1) // 2
    return {"head": v[:k], "tail": v[k:].reshape(-1, 1)}
