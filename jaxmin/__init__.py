"""jaxmin: deterministic minimization in JAX."""

from . import linear as linear
from . import linesearch as linesearch
from . import testing as testing
from ._batch import minimize_batch as minimize_batch
from ._constraints import Constraints as Constraints
from ._minimize import minimize as minimize
from ._least_squares import least_squares as least_squares
from ._solution import Solution as Solution
from ._solution import Reason as Reason
from ._solution import Status as Status
from .solvers import BFGS as BFGS
from .solvers import GaussNewton as GaussNewton
from .solvers import LevenbergMarquardt as LevenbergMarquardt
from .solvers import LBFGS as LBFGS
from .solvers import LBFGSB as LBFGSB
from .solvers import NewtonCG as NewtonCG
from .solvers import AbstractSolver as AbstractSolver
from .solvers import Fromage as Fromage
from .solvers import GradientDescent as GradientDescent
from .solvers import OptimisticGradient as OptimisticGradient
from .solvers import SQP as SQP

from ._version import __version__ as __version__
