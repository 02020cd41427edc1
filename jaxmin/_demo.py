"""The showcase behind `python -m jaxmin`: built-in problems solved, one table."""

import time

import jax
import jax.numpy as jnp
import jax.random as jr

from ._minimize import minimize
from ._solution import Status
from .linesearch import Backtracking, HagerZhang, MoreThuente, Zoom
from .solvers import LBFGS, SQP, GradientDescent, NewtonCG
from .testing._objectives import extended_rosenbrock
from .testing._objectives import ridge_logistic_loss as logistic_loss


def softmax_loss(params, X, labels, lam):
    """Multinomial logistic regression with parameters `{"W": (d, k), "b": (k,)}`."""
    logits = X @ params["W"] + params["b"][None, :]
    nll = jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
    return jnp.mean(nll) + 0.5 * lam * jnp.sum(params["W"] ** 2)


def hs071(x):
    """Hock & Schittkowski (1981) problem 71; minimum 17.0140173 under `hs071_eq`,
    `hs071_ineq` and bounds 1 <= x <= 5."""
    return x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2]


def hs071_eq(x):
    return jnp.stack([x @ x - 40.0])


def hs071_ineq(x):
    return jnp.stack([jnp.prod(x) - 25.0])


def _problems():
    k1, k2, k3, k4 = jr.split(jr.key(0), 4)
    X = jr.normal(k1, (5000, 200))
    w_true = jr.normal(k2, (200,)) / 10.0
    y = (jr.uniform(k3, (5000,)) < jax.nn.sigmoid(X @ w_true)).astype(X.dtype)
    Xs = jr.normal(k4, (2000, 10))
    labels = jnp.argmax(Xs[:, :3] + 0.5 * Xs[:, 3:6], axis=1)
    x0_rosen = jnp.tile(jnp.array([-1.2, 1.0]), 500)
    params0 = {"W": jnp.zeros((10, 3)), "b": jnp.zeros(3)}
    return [
        ("extended Rosenbrock, n=1000", extended_rosenbrock, x0_rosen, ()),
        ("logistic regression, n=200, 5000 samples", logistic_loss, jnp.zeros(200), (X, y, 1e-2)),
        ("softmax regression, pytree {W, b}", softmax_loss, params0, (Xs, labels, 1e-3)),
    ]


def _constrained_problems():
    """(name, solver label, solver, fn, x0, args, constraint keywords)."""
    rosen_upper = jnp.where(jnp.arange(1000) % 4 == 0, 0.5, jnp.inf)
    X, y, _ = _problems()[1][3]  # the logistic regression's data
    return [
        ("Rosenbrock n=1000, x[::4] <= 0.5", "LBFGS + bounds", LBFGS(gtol=1e-6),
         extended_rosenbrock, jnp.tile(jnp.array([-1.2, 1.0]), 500), (),
         {"bounds": (-jnp.inf, rosen_upper)}),
        ("logistic regression, w >= 0", "LBFGS + bounds", LBFGS(gtol=1e-6),
         logistic_loss, jnp.zeros(200), (X, y, 1e-2), {"bounds": (0.0, None)}),
        ("Hock-Schittkowski 71 (eq, ineq, bounds)", "SQP", SQP(),
         hs071, jnp.array([1.0, 5.0, 5.0, 1.0]), (),
         {"eq": hs071_eq, "ineq": hs071_ineq, "bounds": (1.0, 5.0)}),
        ("logistic regression, n=200", "GradientDescent (HZ)",
         GradientDescent(1.0, linesearch=HagerZhang(), gtol=1e-6),
         logistic_loss, jnp.zeros(200), (X, y, 1e-2), {}),
    ]


def _timed(fn, x0, solver, args, **constraints):
    start = time.perf_counter()
    sol = jax.block_until_ready(minimize(fn, x0, solver, args, **constraints))
    first = time.perf_counter() - start
    start = time.perf_counter()
    # cached: no compilation
    sol = jax.block_until_ready(minimize(fn, x0, solver, args, **constraints))
    return sol, first, time.perf_counter() - start


# The table fits an 80-column terminal (79 characters a row while a first call takes
# under 100 s and a second under 100 ms): one line per problem, one row per solver.
_LEGEND = """\
  steps   iterations
  evals   evaluations of f with its gradient
  HVPs    Hessian-vector products (Newton-CG only)
  f       the objective at the solution
  optim.  max|g|; with bounds the projected gradient, with constraints the
          KKT residual (what `gtol` bounds)
  status  the verdict, a `jm.Status` (`sol.message` says more)
  1st     first call: trace + compile + solve, in seconds
  2nd     the same call again, compiling nothing, in milliseconds"""
_HEADER = (f"  {'solver':18}{'steps':>5} {'evals':>5} {'HVPs':>4} {'f':>9} {'optim.':>7}  "
           f"{'status':9}  {'1st':>5} {'2nd':>6}")
_ABBREVIATIONS = {"GradientDescent (HZ)": "GD+HagerZhang", " + bounds": "+bounds"}


def _row(label, sol, first, second) -> str:
    status = Status(int(sol.status)).name.replace("LINESEARCH_FAILED", "LS FAILED")
    for long, short in _ABBREVIATIONS.items():
        label = label.replace(long, short)
    return (
        f"  {label[:18]:18}{int(sol.num_steps):5d} {int(sol.num_fun_evals):5d} "
        f"{int(sol.num_hvp_evals):4d} {float(sol.fun):9.2e} {float(sol.optimality):7.1e}  "
        f"{status:9}  {first:4.1f}s {1e3 * second:4.1f}ms"
    )


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    solvers = {
        "LBFGS+Zoom": LBFGS(gtol=1e-6, linesearch=Zoom()),
        "LBFGS+MoreThuente": LBFGS(gtol=1e-6, linesearch=MoreThuente()),
        "LBFGS+Backtracking": LBFGS(gtol=1e-6, linesearch=Backtracking()),
        "NewtonCG": NewtonCG(gtol=1e-6),
    }
    print("jaxmin showcase: each problem solved in float64 to max|g| <= 1e-6\n")
    print(_LEGEND)
    print("\nUnconstrained\n")
    print(_HEADER)
    for i, (name, fn, x0, args) in enumerate(_problems()):
        print(name)
        for label, solver in solvers.items():
            if i > 0 and "Zoom" not in label and label != "NewtonCG":
                continue  # every search on the first problem, the defaults on the rest
            sol, first, second = _timed(fn, x0, solver, args)
            print(_row(label, sol, first, second))
    print("\nWith bounds and constraints (GD = GradientDescent)\n")
    print(_HEADER)
    for name, label, solver, fn, x0, args, constraints in _constrained_problems():
        print(name)
        sol, first, second = _timed(fn, x0, solver, args, **constraints)
        print(_row(label, sol, first, second))
