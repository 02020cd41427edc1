"""The showcase behind `python -m jaxmin`: built-in problems solved, one table."""

import time

import jax
import jax.numpy as jnp
import jax.random as jr

from ._minimize import minimize
from .linesearch import Backtracking, MoreThuente, Zoom
from .solvers import LBFGS, NewtonCG


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
    logits = X @ params["W"] + params["b"]
    nll = jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
    return jnp.mean(nll) + 0.5 * lam * jnp.sum(params["W"] ** 2)


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


def _timed(fn, x0, solver, args):
    start = time.perf_counter()
    sol = jax.block_until_ready(minimize(fn, x0, solver, args))
    first = time.perf_counter() - start
    start = time.perf_counter()
    sol = jax.block_until_ready(minimize(fn, x0, solver, args))  # cached: no compilation
    return sol, first, time.perf_counter() - start


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
            status = "CONVERGED" if bool(sol.success) else sol.message.split(":")[0]
            print(
                f"{name:42} {label:22} {int(sol.num_steps):6d} {int(sol.num_fun_evals):6d} {int(sol.num_hvp_evals):5d} "
                f"{float(sol.fun):12.5e} {gnorm:9.2e}  {status:10} {first:8.2f}s {1e3 * second:7.2f}ms"
            )
    print("\n1st call = trace + compile + solve; 2nd call = the same solve again, compiling nothing.")
