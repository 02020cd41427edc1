"""Armijo backtracking (Nocedal & Wright, Alg. 3.1)."""

import equinox as eqx
import jax.lax as lax
import jax.numpy as jnp

from .._misc import as_dtype
from .._typing import ScalarLike
from ._base import AbstractLineSearch, LineSearchResult, evaluate


class Backtracking(AbstractLineSearch):
    """Shrink the step by `shrink` until the Armijo (sufficient decrease) condition
    `f(x + alpha p) <= f(x) + c1 alpha grad f(x) . p` holds (N&W Alg. 3.1).

    The default search of `jm.NewtonCG`, whose unit Newton step is usually accepted
    at once; the simplest search, and the cheapest per step. It checks no curvature
    condition, so with `jm.LBFGS` a step may add no memory pair: prefer `Zoom` there.

    **Arguments:**

    - `c1` (default `1e-4`): sufficient-decrease constant in (0, 1), dimensionless.
    - `shrink` (default `0.5`): factor applied to a rejected step, in (0, 1).
    - `max_steps` (default `30`): most evaluations of f; the search fails
      (`ok=False`) after them.

    **Example:**

    ```python
    solver = jm.NewtonCG(linesearch=jm.linesearch.Backtracking(shrink=0.3))
    ```
    """

    c1: ScalarLike = 1e-4
    shrink: ScalarLike = 0.5
    max_steps: int = eqx.field(default=30, static=True)

    def __check_init__(self):
        if isinstance(self.c1, (int, float)) and not 0 < self.c1 < 1:
            raise ValueError("`Backtracking(c1=...)` must lie in (0, 1).")
        if isinstance(self.shrink, (int, float)) and not 0 < self.shrink < 1:
            raise ValueError("`Backtracking(shrink=...)` must lie in (0, 1).")
        if self.max_steps < 1:
            raise ValueError("`Backtracking(max_steps=...)` must be at least 1.")

    def __call__(self, f_and_g, x, p, f0, g0, alpha0=1.0):
        c1, shrink = as_dtype(self.c1, x), as_dtype(self.shrink, x)
        slope = c1 * jnp.dot(g0, p)

        def armijo(alpha, f):
            return f <= f0 + alpha * slope

        def cond(carry):
            alpha, f, _, n = carry
            return (n == 0) | (~armijo(alpha, f) & (n < self.max_steps))

        def body(carry):
            alpha, _, _, n = carry
            alpha = jnp.where(n == 0, as_dtype(alpha0, x), shrink * alpha)
            f, g, _ = evaluate(f_and_g, x, p, alpha)
            return alpha, f, g, n + 1

        start = (jnp.zeros((), x.dtype), f0, g0, jnp.array(0, jnp.int32))
        alpha, f, g, n = lax.while_loop(cond, body, start)
        return LineSearchResult(alpha=alpha, f=f, g=g, ok=armijo(alpha, f), num_evals=n)
