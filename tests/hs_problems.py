"""Hock & Schittkowski (1981) test problems, with their published optima.

`HSProblem` is shared by the bound-only set (`hs_bounds.py`, used by the L-BFGS-B and
SQP tests) and the set with equality/inequality constraints (`hs_constrained.py`, SQP
tests). Every function takes a 1-D float array `x` and is written with `jnp`, so it
runs in float32 and float64; constraints follow SciPy's SLSQP convention (`eq(x) == 0`,
`ineq(x) >= 0`, each returning a 1-D array).
"""

import math
from dataclasses import dataclass
from typing import Callable, Optional

INF = math.inf


@dataclass(frozen=True)
class HSProblem:
    name: str  # "hs001", ...
    fn: Callable
    x0: tuple  # the standard start of the collection
    f_star: float  # the published optimal value
    x_star: Optional[tuple] = None  # the published minimiser, where unique
    lower: Optional[tuple] = None  # bounds per coordinate (-INF / INF: free)
    upper: Optional[tuple] = None
    eq: Optional[Callable] = None
    ineq: Optional[Callable] = None
    feasible_start: bool = True  # x0 satisfies every constraint

    @property
    def n(self) -> int:
        return len(self.x0)

    @property
    def bounds(self):
        """`(lower, upper)` for `minimize(bounds=...)`, or `None`."""
        if self.lower is None and self.upper is None:
            return None
        lower = self.lower if self.lower is not None else (-INF,) * self.n
        upper = self.upper if self.upper is not None else (INF,) * self.n
        return lower, upper


def all_problems() -> list[HSProblem]:
    """Every HS problem the tests know: bound-only first, then constrained."""
    from hs_bounds import BOUND_ONLY
    from hs_constrained import CONSTRAINED

    return [*BOUND_ONLY, *CONSTRAINED]
