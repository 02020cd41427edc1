"""The showcase behind `python -m jaxmin`: built-in problems solved, one table."""

import time

import jax
import jax.numpy as jnp
import jax.random as jr

from ._minimize import minimize
from .linesearch import Backtracking, HagerZhang, MoreThuente, Zoom
from .solvers import LBFGS, SQP, GradientDescent, NewtonCG


def extended_rosenbrock(x):
    """Moré, Garbow & Hillstrom (1981) #21; minimum 0 at x = 1."""
    odd, even = x[::2], x[1::2]
    return jnp.sum(100.0 * (even - odd**2) ** 2 + (1.0 - odd) ** 2)


def logistic_loss(w, X, y, lam):
    """Mean binary cross-entropy with an L2 penalty `lam / 2 |w|^2`."""
    z = X @ w
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z) + 0.5 * lam * jnp.dot(w, w)


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


def _row(name, label, sol, first, second, optimality) -> str:
    status = "CONVERGED" if bool(sol.success) else sol.message.split(":")[0]
    return (
        f"{name:42} {label:22} {int(sol.num_steps):6d} {int(sol.num_fun_evals):6d} "
        f"{int(sol.num_hvp_evals):5d} {float(sol.fun):12.5e} {optimality:9.2e}  {status:10} "
        f"{first:8.2f}s {1e3 * second:7.2f}ms"
    )


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    solvers = {
        "LBFGS (Zoom)": LBFGS(gtol=1e-6, linesearch=Zoom()),
        "LBFGS (MoreThuente)": LBFGS(gtol=1e-6, linesearch=MoreThuente()),
        "LBFGS (Backtracking)": LBFGS(gtol=1e-6, linesearch=Backtracking()),
        "NewtonCG": NewtonCG(gtol=1e-6),
    }
    header = (
        f"{'problem':42} {'solver':22} {'steps':>6} {'evals':>6} {'HVPs':>5} {'f':>12} {'|g|inf':>9}  "
        f"{'status':10} {'1st call':>9} {'2nd call':>9}"
    )
    print("jaxmin showcase (float64, gtol = 1e-6)\n")
    print(header)
    print("-" * len(header))
    for i, (name, fn, x0, args) in enumerate(_problems()):
        for label, solver in solvers.items():
            if i > 0 and "Zoom" not in label and label != "NewtonCG":
                continue  # every search on the first problem, the defaults on the rest
            sol, first, second = _timed(fn, x0, solver, args)
            gnorm = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(sol.grad))
            print(_row(name, label, sol, first, second, gnorm))
    print("\nWith bounds and constraints (optimality: projected gradient, KKT residual)\n")
    print(header.replace("   |g|inf", "   optim."))
    print("-" * len(header))
    for name, label, solver, fn, x0, args, constraints in _constrained_problems():
        sol, first, second = _timed(fn, x0, solver, args, **constraints)
        optimality = float(solver.optimality_norm(sol.state))
        print(_row(name, label, sol, first, second, optimality))
    print("\n1st call = trace + compile + solve; 2nd call = the same solve again, compiling nothing.")
