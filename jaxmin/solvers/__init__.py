"""Solvers: each an `eqx.Module` of hyperparameters with `init`/`step`/`terminate`."""

from ._base import AbstractSolver as AbstractSolver
from ._base import AbstractState as AbstractState
from ._bfgs import BFGS as BFGS
from ._gauss_newton import GaussNewton as GaussNewton
from ._levenberg_marquardt import LevenbergMarquardt as LevenbergMarquardt
from ._lbfgs import LBFGS as LBFGS
from ._lbfgs import two_loop as two_loop
from ._lbfgsb import LBFGSB as LBFGSB
from ._newton_cg import NewtonCG as NewtonCG
from ._newton_cg import hvp as hvp
from ._fromage import Fromage as Fromage
from ._gradient_descent import GradientDescent as GradientDescent
from ._optimistic import OptimisticGradient as OptimisticGradient
from ._sqp import SQP as SQP
