"""One runner per solver.

A runner is built once per (problem, solver) by ``make_<solver>(problem)`` and is
then called many times:

* ``raw = runner(x0)`` performs one complete solve from ``x0`` and returns the
  solver's raw output (JAX arrays, not yet synchronised).  The harness times this
  call together with ``jax.block_until_ready(raw)``.
* ``runner.result(raw) -> Result`` converts the raw output to Python/NumPy values
  outside the timed region.

Each ``make_*`` builds a *fresh* objective (``problem.make_fun()``), so the first
call pays tracing + compilation and later calls reuse the compiled code.  Batched
runners (``make_batch_*``) take ``x0`` of shape ``(B, n)``.

All solvers target ||grad f||_inf <= GTOL with history size HISTORY; see
benchmarks/README.md for how each library's own stopping rule was mapped onto
that target and how evaluations are counted.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .problems import GTOL, HISTORY, MAXITER, Problem

# Optimistix terminates on small steps (Cauchy criterion on both y and f, with the
# max-norm), not on the gradient.  rtol = atol = OPTX_TOL[problem] was chosen as the
# LOOSEST value of the ladder 1e-6, 1e-8, ..., 1e-14 for which optx.LBFGS reaches
# ||g||_inf <= 1e-6 from both the standard and the steady start (see
# `python -m benchmarks.calibrate optx`).  This per-problem choice is an oracle
# tuning that favours Optimistix; problems not listed use OPTX_TOL_DEFAULT.
OPTX_TOL_DEFAULT = 1e-10
OPTX_TOL: dict[str, float] = {
    "rosenbrock-2": 1e-6,
    "rosenbrock-100": 1e-8,
    "rosenbrock-1000": 1e-8,
    "rosenbrock-10000": 1e-10,
    "powell-1000": 1e-8,
    "broyden-tri-1000": 1e-8,
    "quadratic-1000": 1e-6,
    "logistic-200": 1e-6,
}

# Optimistix BFGS / LBFGS tolerance in the batch benchmark (Rosenbrock n=2), from
# the same calibration (both need 1e-8 for every problem of the batch).
OPTX_TOL_BATCH = 1e-8


@dataclasses.dataclass
class Result:
    x: np.ndarray
    iters: Any  # int, or array for batches
    nfev: Any  # int, or array for batches
    ok: Any = None  # the solver's own success flag (bool / array), None if n/a
    note: str = ""
    nhvp: Any = None  # Hessian-vector products (Newton-type solvers only)


class Runner:
    """A compiled-once solve: ``runner(x0) -> raw``; ``runner.result(raw) -> Result``."""

    name: str = "?"
    batched: bool = False

    def __call__(self, x0):  # pragma: no cover - interface
        raise NotImplementedError

    def result(self, raw) -> Result:  # pragma: no cover - interface
        raise NotImplementedError


class _JittedRunner(Runner):
    """Runner around a jitted ``solve(x0, args) -> (x, iters, nfev, ok)`` or, for the
    Newton-type solvers, ``(x, iters, nfev, ok, nhvp)``."""

    def __init__(self, name: str, solve: Callable, args: tuple, batched: bool = False):
        self.name = name
        self.batched = batched
        if batched:
            solve = jax.vmap(solve, in_axes=(0, None))
        self._solve = jax.jit(solve)
        self._args = args

    def __call__(self, x0):
        return self._solve(x0, self._args)

    def result(self, raw) -> Result:
        x, iters, nfev, ok, *hvp = jax.device_get(raw)
        if self.batched:
            return Result(np.asarray(x), np.asarray(iters), np.asarray(nfev), np.asarray(ok))
        return Result(np.asarray(x), int(iters), int(nfev), bool(ok), nhvp=int(hvp[0]) if hvp else None)


# --------------------------------------------------------------------------- #
# jaxmin LBFGS, called directly or inside jax.jit (the runner classes serve NewtonCG too)
# --------------------------------------------------------------------------- #


def _jaxmin_lbfgs():
    import jaxmin as jm

    # Default line search of jm.LBFGS; history 10; gradient target GTOL (inf-norm).
    return jm.LBFGS(history_size=HISTORY, gtol=GTOL)


def _status_note(sol) -> str:
    import jaxmin as jm

    if bool(sol.success):
        return ""
    status = int(sol.status)
    try:
        return f"status {jm.Status(status).name}"
    except ValueError:
        return f"status {status}"


class JaxminRunner(Runner):
    """``jm.minimize`` called directly: it is compiled and cached by jaxmin itself."""

    def __init__(self, problem: Problem, solver, name: str, hvp: bool = False):
        import jaxmin as jm

        self.name = name
        self._minimize = jm.minimize
        self._fun = problem.make_fun()
        self._solver = solver
        self._args = problem.args
        self._hvp = hvp

    def __call__(self, x0):
        return self._minimize(self._fun, x0, self._solver, args=self._args, max_steps=MAXITER)

    def result(self, sol) -> Result:
        return Result(
            np.asarray(sol.x), int(sol.num_steps), int(sol.num_fun_evals), bool(sol.success),
            _status_note(sol), nhvp=int(sol.num_hvp_evals) if self._hvp else None,
        )


def jaxmin_jitted(problem: Problem, solver, name: str, hvp: bool = False, batched: bool = False) -> Runner:
    """``jm.minimize`` inside ``jax.jit``, returning what the peers' jitted runners
    return: the same treatment as the JAX peers (no Python-side dispatch per call)."""
    import jaxmin as jm

    fun = problem.make_fun()

    def solve(x0, args):
        sol = jm.minimize(fun, x0, solver, args=args, max_steps=MAXITER)
        out = (sol.x, sol.num_steps, sol.num_fun_evals, sol.success)
        return (*out, sol.num_hvp_evals) if hvp else out

    return _JittedRunner(name, solve, problem.args, batched=batched)


def make_jaxmin(problem: Problem) -> Runner:
    return JaxminRunner(problem, _jaxmin_lbfgs(), "jaxmin")


def make_jaxmin_jit(problem: Problem) -> Runner:
    return jaxmin_jitted(problem, _jaxmin_lbfgs(), "jaxmin-jit")


def make_batch_jaxmin(problem: Problem) -> Runner:
    return jaxmin_jitted(problem, _jaxmin_lbfgs(), "jaxmin", batched=True)


# --------------------------------------------------------------------------- #
# SciPy: NumPy callables from jitted JAX functions
# --------------------------------------------------------------------------- #


def numpy_value_and_grad(fun: Callable) -> Callable:
    """``fg(x, *args) -> (float, float64 array)`` from a jitted ``jax.value_and_grad``:
    what every SciPy solver of the benchmarks calls (``jac=True``)."""
    vg = jax.jit(jax.value_and_grad(fun))

    def fg(x, *args):
        v, g = vg(x, *args)
        return float(v), np.asarray(g, dtype=np.float64)

    return fg


# --------------------------------------------------------------------------- #
# SciPy L-BFGS-B
# --------------------------------------------------------------------------- #


SCIPY_OPTIONS = dict(maxcor=HISTORY, gtol=GTOL, ftol=0.0, maxiter=MAXITER, maxfun=20 * MAXITER)


class ScipyRunner(Runner):
    """``scipy.optimize.minimize(method="L-BFGS-B")`` with a jitted jax value_and_grad.

    The whole Python-side loop (SciPy's own overhead, the numpy<->jax conversions
    at every evaluation) is part of the measured time: that is SciPy's real cost.
    """

    name = "scipy"

    def __init__(self, problem: Problem, batched: bool = False):
        from scipy.optimize import minimize

        self._minimize = minimize
        self.batched = batched
        self._fg = numpy_value_and_grad(problem.make_fun())
        self._args = problem.args

    def _one(self, x0):
        return self._minimize(
            self._fg,
            np.asarray(x0, dtype=np.float64),
            args=self._args,
            jac=True,
            method="L-BFGS-B",
            options=SCIPY_OPTIONS,
        )

    def __call__(self, x0):
        if self.batched:
            return [self._one(x) for x in np.asarray(x0)]
        return self._one(x0)

    def result(self, res) -> Result:
        if self.batched:
            return Result(
                np.stack([r.x for r in res]),
                np.array([r.nit for r in res]),
                np.array([r.nfev for r in res]),
                np.array([r.success for r in res]),
            )
        msg = res.message if isinstance(res.message, str) else str(res.message)
        return Result(np.asarray(res.x), int(res.nit), int(res.nfev), bool(res.success), "" if res.success else msg)


def make_scipy(problem: Problem) -> Runner:
    return ScipyRunner(problem)


def make_batch_scipy(problem: Problem) -> Runner:
    return ScipyRunner(problem, batched=True)


# --------------------------------------------------------------------------- #
# Optax L-BFGS (documented while_loop driver)
# --------------------------------------------------------------------------- #


def _optax_solve(fun: Callable) -> Callable:
    """The `run_opt` loop from Optax's L-BFGS documentation, jitted.

    Differences from the docs, both required by the benchmark: the loop stops on
    max|g| <= GTOL (the docs use the 2-norm), and the carry accumulates the number
    of objective evaluations from the state (1 for the initial value_and_grad when
    the state holds no value yet, plus ``num_linesearch_steps`` of each zoom line
    search, each of which is one value_and_grad).
    """
    import optax

    opt = optax.lbfgs(memory_size=HISTORY)  # default: zoom line search, 20 steps max

    def solve(x0, args):
        f = lambda x: fun(x, *args)  # noqa: E731
        value_and_grad_fun = optax.value_and_grad_from_state(f)

        def step(carry):
            params, state, nfev = carry
            value, grad = value_and_grad_fun(params, state=state)
            stored = optax.tree.get(state, "value")
            nfev = nfev + jnp.where(jnp.isfinite(stored), 0, 1)
            updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=f)
            params = optax.apply_updates(params, updates)
            nfev = nfev + optax.tree.get(state, "num_linesearch_steps")
            return params, state, nfev

        def continuing_criterion(carry):
            _, state, _ = carry
            iter_num = optax.tree.get(state, "count")
            grad = optax.tree.get(state, "grad")
            err = optax.tree.norm(grad, ord=jnp.inf)
            return (iter_num == 0) | ((iter_num < MAXITER) & (err > GTOL))

        init_carry = (x0, opt.init(x0), jnp.asarray(0))
        params, state, nfev = jax.lax.while_loop(continuing_criterion, step, init_carry)
        count = optax.tree.get(state, "count")
        ok = optax.tree.norm(optax.tree.get(state, "grad"), ord=jnp.inf) <= GTOL
        return params, count, nfev, ok

    return solve


def make_optax(problem: Problem) -> Runner:
    return _JittedRunner("optax", _optax_solve(problem.make_fun()), problem.args)


def make_batch_optax(problem: Problem) -> Runner:
    return _JittedRunner("optax", _optax_solve(problem.make_fun()), problem.args, batched=True)


# --------------------------------------------------------------------------- #
# Optimistix (optx.minimise)
# --------------------------------------------------------------------------- #


def _optx_solve(fun: Callable, solver) -> Callable:
    """``optx.minimise`` (jitted); evaluations = ``stats['num_steps']``.

    Every Optimistix quasi-Newton step evaluates the objective exactly once (a
    ``jax.linearize`` at the trial point; the gradient is pulled back only if the
    backtracking search accepts it), so ``num_steps`` counts evaluations and
    ``state.num_accepted_steps`` counts iterations.
    """
    import optimistix as optx

    def solve(x0, args):
        sol = optx.minimise(
            lambda y, a: fun(y, *a), solver, x0, args=args, max_steps=MAXITER, throw=False
        )
        ok = sol.result == optx.RESULTS.successful
        return sol.value, sol.state.num_accepted_steps, sol.stats["num_steps"], ok

    return solve


def optx_tol(problem: Problem) -> float:
    return OPTX_TOL.get(problem.name, OPTX_TOL_DEFAULT)


def make_optimistix(problem: Problem, tol: float | None = None) -> Runner:
    import optimistix as optx

    tol = optx_tol(problem) if tol is None else tol
    solver = optx.LBFGS(rtol=tol, atol=tol, history_length=HISTORY)
    return _JittedRunner("optimistix", _optx_solve(problem.make_fun(), solver), problem.args)


def make_batch_optimistix_lbfgs(problem: Problem) -> Runner:
    import optimistix as optx

    solver = optx.LBFGS(rtol=OPTX_TOL_BATCH, atol=OPTX_TOL_BATCH, history_length=HISTORY)
    return _JittedRunner("optimistix", _optx_solve(problem.make_fun(), solver), problem.args, batched=True)


def make_batch_optimistix_bfgs(problem: Problem) -> Runner:
    import optimistix as optx

    solver = optx.BFGS(rtol=OPTX_TOL_BATCH, atol=OPTX_TOL_BATCH)
    return _JittedRunner("optimistix-bfgs", _optx_solve(problem.make_fun(), solver), problem.args, batched=True)


# --------------------------------------------------------------------------- #
# JAXopt LBFGS (jitted run)
# --------------------------------------------------------------------------- #

# JAXopt stops on ||g||_2 <= tol.  tol = GTOL on the 2-norm implies ||g||_inf <= GTOL
# (||g||_inf <= ||g||_2), so this is the loosest setting of JAXopt's own criterion
# that guarantees the common target; it is stricter than the target for n > 1.
JAXOPT_TOL = GTOL


def _jaxopt_solve(fun: Callable, inf_norm: bool = False) -> Callable:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import jaxopt

    cls = jaxopt.LBFGS
    if inf_norm:

        class LBFGSInfNorm(jaxopt.LBFGS):
            """JAXopt's LBFGS with its loop condition tested on ||g||_inf instead of
            ||g||_2 (overrides the private ``_cond_fun``; nothing else changes)."""

            def _cond_fun(self, inputs):
                _, state = inputs[0]
                return (jnp.max(jnp.abs(state.grad)) > self.tol) & jnp.logical_or(
                    not self.stop_if_linesearch_fails, ~state.failed_linesearch
                )

        cls = LBFGSInfNorm

    solver = cls(fun=fun, maxiter=MAXITER, tol=JAXOPT_TOL, history_size=HISTORY)

    def solve(x0, args):
        params, state = solver.run(x0, *args)
        err = jnp.max(jnp.abs(state.grad)) if inf_norm else state.error
        return params, state.iter_num, state.num_fun_eval, err <= JAXOPT_TOL

    return solve


def make_jaxopt(problem: Problem) -> Runner:
    return _JittedRunner("jaxopt", _jaxopt_solve(problem.make_fun()), problem.args)


def make_jaxopt_inf(problem: Problem) -> Runner:
    """Not a documented configuration: see README ("JAXopt, ∞-norm variant")."""
    return _JittedRunner("jaxopt-inf", _jaxopt_solve(problem.make_fun(), inf_norm=True), problem.args)


def make_batch_jaxopt(problem: Problem) -> Runner:
    return _JittedRunner("jaxopt", _jaxopt_solve(problem.make_fun()), problem.args, batched=True)


# --------------------------------------------------------------------------- #
# A time limit for SciPy solves (the Newton-CG section's runners)
# --------------------------------------------------------------------------- #

# A SciPy Newton-type solve that runs longer than this many seconds is aborted from
# inside its callbacks and its row reads "skipped: over budget".
NEWTON_SOLVE_LIMIT_S = 20.0


class OverBudget(Exception):
    """Raised from inside a SciPy callback when one solve exceeds its time limit."""


# --------------------------------------------------------------------------- #
# Registries
# --------------------------------------------------------------------------- #

# Order = column/row order in the report; jaxmin first, peers after.
SINGLE: dict[str, Callable[[Problem], Runner]] = {
    "jaxmin": make_jaxmin,
    "jaxmin-jit": make_jaxmin_jit,
    "scipy": make_scipy,
    "optax": make_optax,
    "optimistix": make_optimistix,
    "jaxopt": make_jaxopt,
    "jaxopt-inf": make_jaxopt_inf,
}

BATCH: dict[str, Callable[[Problem], Runner]] = {
    "jaxmin": make_batch_jaxmin,
    "scipy": make_batch_scipy,
    "optax": make_batch_optax,
    "optimistix": make_batch_optimistix_lbfgs,
    "optimistix-bfgs": make_batch_optimistix_bfgs,
    "jaxopt": make_batch_jaxopt,
}

PEER_LABELS = {
    "jaxmin": "jaxmin LBFGS",
    "jaxmin-jit": "jaxmin LBFGS, in jax.jit",
    "scipy": "SciPy L-BFGS-B",
    "optax": "Optax lbfgs",
    "optimistix": "Optimistix LBFGS",
    "optimistix-bfgs": "Optimistix BFGS",
    "jaxopt": "JAXopt LBFGS",
    "jaxopt-inf": "JAXopt LBFGS, ‖g‖∞ stop (patched)",
    "jaxmin-ncg": "jaxmin NewtonCG",
    "jaxmin-ncg-jit": "jaxmin NewtonCG, in jax.jit",
    "scipy-ncg": "SciPy Newton-CG",
    "scipy-trust-ncg": "SciPy trust-ncg",
}
