"""`jaxmin.testing`: certificates and test problems for optimisation code.

- `check_optimality(fn, sol_or_x, ...)`: an independent KKT and second-order
  certificate of a point, with a finite-difference check of the gradient.
- `check_derivatives(solve, theta, ...)`: derivatives through a solution (`jax.jvp`,
  `jax.vjp`) against central finite differences.
- `Problem`, `MGH_PROBLEMS`: problems with known minimisers (Moré, Garbow & Hillstrom).
- `strategies`: Hypothesis strategies of problems with known minimisers. Needs
  `hypothesis` (imported only when `jaxmin.testing.strategies` is first used).
"""

import importlib

from ._derivatives import DerivativeReport as DerivativeReport
from ._derivatives import check_derivatives as check_derivatives
from ._mgh import MGH_PROBLEMS as MGH_PROBLEMS
from ._optimality import OptimalityReport as OptimalityReport
from ._optimality import check_optimality as check_optimality
from ._problem import Problem as Problem


def __getattr__(name):
    # `jm.testing.strategies` imports Hypothesis on first use only, so that
    # `import jaxmin` does not need it.
    if name == "strategies":
        return importlib.import_module(".strategies", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
