"""Linear solvers for `A x = b` given only `v -> A v`: Newton systems and implicit derivatives."""

from ._base import AbstractLinearSolver as AbstractLinearSolver
from ._base import LinearResult as LinearResult
from ._base import Reason as Reason
from ._cg import CG as CG
from ._cg import TruncatedCG as TruncatedCG
from ._lineax import Lineax as Lineax
