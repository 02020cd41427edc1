"""The ``newton`` section: jaxmin ``NewtonCG`` (called directly and inside
``jax.jit``) against SciPy ``Newton-CG`` and ``trust-ncg`` on the single problems of
``problems.py``; the ratio column is relative to SciPy Newton-CG."""

from __future__ import annotations

import time
from typing import Callable

import jax
import numpy as np

from . import problems as P
from . import report
from . import runners as R
from .lbfgs import problem_list
from .problems import GTOL, MAXITER, Problem
from .runners import NEWTON_SOLVE_LIMIT_S, OverBudget, Result, Runner, numpy_value_and_grad
from .suite import HarnessResult, HarnessSection, single_problems

# --------------------------------------------------------------------------- #
# Runners: jaxmin NewtonCG, SciPy Newton-CG and trust-ncg
# --------------------------------------------------------------------------- #

# SciPy's Newton-CG has no gradient test: it stops when the 1-norm of the last step
# is <= n * xtol.  SCIPY_NCG_XTOL[problem] is the LOOSEST xtol of the ladder
# 1e-5 (SciPy's default), 1e-6, ..., 1e-10 that reaches ||g||_inf <= 1e-6 from both
# the standard and the steady start (`python -m benchmarks.calibrate newton`).  Like
# OPTX_TOL this is an oracle, per-problem tuning in SciPy's favour.  A single global
# value would have to be 1e-7 or 1e-8 (1e-6 misses the target on rosenbrock-100/10000
# and broyden-tri-1000; from 1e-9 on, powell-1000 meets the target but never
# satisfies the step test and runs to maxiter = 10000 iterations, ~6 s).
SCIPY_NCG_XTOL_DEFAULT = 1e-8
SCIPY_NCG_XTOL: dict[str, float] = {
    "rosenbrock-2": 1e-6,
    "rosenbrock-100": 1e-7,
    "rosenbrock-1000": 1e-6,
    "rosenbrock-10000": 1e-7,
    "powell-1000": 1e-5,
    "broyden-tri-1000": 1e-7,
    "quadratic-1000": 1e-5,
    "logistic-200": 1e-5,
}

# trust-ncg stops on ||g||_2 < gtol; gtol = GTOL on the 2-norm guarantees the
# inf-norm target (||g||_inf <= ||g||_2) and is the loosest value that does.
SCIPY_TRUST_NCG_GTOL = GTOL

def scipy_ncg_xtol(problem: Problem) -> float:
    return SCIPY_NCG_XTOL.get(problem.name, SCIPY_NCG_XTOL_DEFAULT)


class ScipyNewtonRunner(Runner):
    """``scipy.optimize.minimize(method="Newton-CG" | "trust-ncg", jac=True, hessp=...)``.

    ``fg`` is a jitted ``jax.value_and_grad`` returning ``(float, float64 array)`` (as
    for L-BFGS-B); ``hessp(x, p)`` is a jitted forward-over-reverse product
    ``jax.jvp(jax.grad(f), (x,), (p,))[1]`` returned as a float64 array.  Both check a
    per-solve deadline (one ``perf_counter`` call, ~50 ns) and raise ``OverBudget``
    past it.  Iterations / evaluations / HVPs are SciPy's own ``nit`` / ``nfev`` /
    ``nhev`` (see ``check_evals`` for the cross-check against real call counts).
    """

    def __init__(self, problem: Problem, method: str, options: dict, name: str):
        from scipy.optimize import minimize

        self.name = name
        self._minimize = minimize
        self._method = method
        self._options = options
        self.limit_s = NEWTON_SOLVE_LIMIT_S
        self._deadline = float("inf")
        fun = problem.make_fun()
        value_and_grad = numpy_value_and_grad(fun)
        grad = jax.grad(fun)
        hvp = jax.jit(lambda x, p, *args: jax.jvp(lambda y: grad(y, *args), (x,), (p,))[1])
        clock = time.perf_counter

        def fg(x, *args):
            if clock() > self._deadline:
                raise OverBudget(f"one solve took > {self.limit_s:g} s")
            return value_and_grad(x, *args)

        def hessp(x, p, *args):
            if clock() > self._deadline:
                raise OverBudget(f"one solve took > {self.limit_s:g} s")
            return np.asarray(hvp(x, p, *args), dtype=np.float64)

        self._fg = fg
        self._hessp = hessp
        self._args = problem.args

    def __call__(self, x0):
        self._deadline = time.perf_counter() + self.limit_s
        try:
            return self._minimize(
                self._fg,
                np.asarray(x0, dtype=np.float64),
                args=self._args,
                jac=True,
                hessp=self._hessp,
                method=self._method,
                options=self._options,
            )
        finally:
            self._deadline = float("inf")

    def result(self, res) -> Result:
        msg = res.message if isinstance(res.message, str) else str(res.message)
        return Result(
            np.asarray(res.x),
            int(res.nit),
            int(res.nfev),
            bool(res.success),
            "" if res.success else msg,
            nhvp=int(res.nhev),
        )


def make_scipy_ncg(problem: Problem, xtol: float | None = None) -> Runner:
    xtol = scipy_ncg_xtol(problem) if xtol is None else xtol
    return ScipyNewtonRunner(problem, "Newton-CG", dict(xtol=xtol, maxiter=MAXITER), "scipy-ncg")


def make_scipy_trust_ncg(problem: Problem) -> Runner:
    return ScipyNewtonRunner(
        problem, "trust-ncg", dict(gtol=SCIPY_TRUST_NCG_GTOL, maxiter=MAXITER), "scipy-trust-ncg"
    )


def _jaxmin_newton():
    import jaxmin as jm

    # Default linear solver (truncated CG) and line search; gradient target GTOL
    # (inf-norm), the same stopping rule as jm.LBFGS.
    return jm.NewtonCG(gtol=GTOL)


def make_jaxmin_ncg(problem: Problem) -> Runner:
    return R.JaxminRunner(problem, _jaxmin_newton(), "jaxmin-ncg", hvp=True)


def make_jaxmin_ncg_jit(problem: Problem) -> Runner:
    return R.jaxmin_jitted(problem, _jaxmin_newton(), "jaxmin-ncg-jit", hvp=True)


# Order = row order in the report; the ratio column is relative to REFERENCE.
NEWTON: dict[str, Callable[[Problem], Runner]] = {
    "jaxmin-ncg": make_jaxmin_ncg,
    "jaxmin-ncg-jit": make_jaxmin_ncg_jit,
    "scipy-ncg": make_scipy_ncg,
    "scipy-trust-ncg": make_scipy_trust_ncg,
}
REFERENCE = "scipy-ncg"


# --------------------------------------------------------------------------- #
# The section
# --------------------------------------------------------------------------- #




def markdown(result: HarnessResult) -> str:
    xtols = ", ".join(f"{n}: {SCIPY_NCG_XTOL.get(n, SCIPY_NCG_XTOL_DEFAULT):g}" for n in result.descriptions)
    summary = report.newton_summary(result.rows, REFERENCE)
    return "".join([
        "\n## Newton-CG\n\n",
        f"jaxmin `NewtonCG(gtol={P.GTOL:g})` (default truncated-CG linear solver and line search), "
        "called directly and inside `jax.jit`, against SciPy `minimize(method=\"Newton-CG\")` "
        "and `minimize(method=\"trust-ncg\")`, both with `jac=True` (jitted value_and_grad) and "
        "`hessp` (jitted forward-over-reverse HVP), float64 NumPy in and out. The problems, starts "
        f"and target ‖∇f‖∞ ≤ {P.GTOL:g} of the L-BFGS section. SciPy Newton-CG has no gradient test, only "
        "`xtol` (1-norm of the step ≤ n·xtol), calibrated per problem as the loosest of 1e-5…1e-10 "
        f"reaching the target from both starts ({xtols}); trust-ncg `gtol` = "
        f"{SCIPY_TRUST_NCG_GTOL:g} on ‖g‖₂ (implies the ∞-norm target); both `maxiter` = "
        f"{P.MAXITER}. *× {report.label(REFERENCE)}* = steady / SciPy Newton-CG's steady. "
        "evals = value+gradient evaluations (SciPy: `nfev`), HVPs = Hessian-vector products "
        "(SciPy: `nhev`; trust-ncg's `nhev` is one more than the real count, see README). "
        f"Steady = median of {result.repeats} interleaved calls, at most {result.budget:g} s per "
        f"solver and problem (fewer: `(n=…)`); a SciPy solve over {NEWTON_SOLVE_LIMIT_S:g} s "
        "is aborted (\"skipped: over budget\"). *jaxmin floor* = evals × t_eval + HVPs × t_hvp "
        f"(steady start), each measured in a jitted fori_loop. Section wall time {result.elapsed:.0f} s.\n\n",
        problem_list(result.descriptions),
        ("Targets (steady ≤ 0.1× SciPy Newton-CG on every problem; evals + HVPs ≤ "
         "SciPy Newton-CG's, median over problems):\n\n" + summary + "\n") if summary else "",
        report.newton_table([r for rows in result.rows for r in rows], REFERENCE),
        f"\nChart: `{result.chart}`.\n" if result.chart else "",
    ])


SECTION = HarnessSection(
    "newton", NEWTON, tuple(P.BUILDERS), single_problems, markdown, repeats=(5, 3), budget=10.0,
    chart=("_newton", "Newton-CG section: steady-state solve time (hatched: did not reach ‖g‖∞ ≤ 1e-6)"),
    ratio_reference=REFERENCE,
)
