"""jaxmin: deterministic minimization in JAX."""

from . import linear as linear
from . import linesearch as linesearch
from ._minimize import minimize as minimize
from ._solution import Solution as Solution
from ._solution import Status as Status
from .solvers import LBFGS as LBFGS
from .solvers import NewtonCG as NewtonCG
from .solvers import AbstractSolver as AbstractSolver

__version__ = "0.1.0"
