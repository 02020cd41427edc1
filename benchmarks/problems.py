"""Benchmark problems: objectives, data, standard starts.

Every objective has the signature ``fun(x, *args) -> scalar`` where ``args`` is a
tuple of (possibly empty) data arrays.  Data are passed as *arguments* (traced),
never closed over as constants, so that no solver gets an XLA compile that
constant-folds an 8 MB matrix and all solvers see the same program.

``Problem.make_fun()`` returns a brand-new function object each time (a fresh
closure), so JAX's / jaxmin's tracing caches, which key on function identity,
cannot help a "first call" measurement.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

# Perturbation used to build the second start for the steady-state timings:
# x0_steady = x0 + STEADY_SCALE * N(0, 1) (fixed seed, same shape).
STEADY_SCALE = 1e-2
STEADY_SEED = 12345


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    name: str
    n: int
    base: Callable  # fun(x, *args) -> scalar
    x0: np.ndarray  # standard start
    x0_steady: np.ndarray  # another start of the same shape, for repeated calls
    args: tuple = ()  # data, as jax arrays (float64)
    description: str = ""

    def make_fun(self) -> Callable:
        """A fresh function object wrapping the objective (defeats identity caches)."""
        base = self.base

        def fun(x, *args):
            return base(x, *args)

        return fun


def _steady_start(x0: np.ndarray, seed: int = STEADY_SEED) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return x0 + STEADY_SCALE * rng.standard_normal(x0.shape)


# --------------------------------------------------------------------------- #
# Objectives (More, Garbow & Hillstrom 1981 numbering in comments)
# --------------------------------------------------------------------------- #


def ext_rosenbrock(x):
    """Extended Rosenbrock (MGH 21): sum 100 (x_{2i} - x_{2i-1}^2)^2 + (1 - x_{2i-1})^2."""
    x1 = x[0::2]
    x2 = x[1::2]
    return jnp.sum(100.0 * (x2 - x1**2) ** 2 + (1.0 - x1) ** 2)


def ext_powell(x):
    """Extended Powell singular (MGH 22); singular Hessian at the minimiser 0."""
    x = x.reshape(-1, 4)
    a, b, c, d = x[:, 0], x[:, 1], x[:, 2], x[:, 3]
    return jnp.sum((a + 10.0 * b) ** 2 + 5.0 * (c - d) ** 2 + (b - 2.0 * c) ** 4 + 10.0 * (a - d) ** 4)


def broyden_tridiagonal(x):
    """Broyden tridiagonal (MGH 30) as a least-squares objective sum f_i(x)^2."""
    xp = jnp.pad(x, 1)  # x_0 = x_{n+1} = 0
    r = (3.0 - 2.0 * x) * x - xp[:-2] - 2.0 * xp[2:] + 1.0
    return jnp.sum(r**2)


def quadratic(x, A, xstar):
    """0.5 (x - x*)^T A (x - x*) with a dense SPD A."""
    d = x - xstar
    return 0.5 * jnp.dot(d, A @ d)


def logistic(w, X, y, lam):
    """Mean logistic loss + lam/2 ||w||^2; labels y in {0, 1}."""
    z = X @ w
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z) + 0.5 * lam * jnp.dot(w, w)


# --------------------------------------------------------------------------- #
# Instances
# --------------------------------------------------------------------------- #


def _rosenbrock(n: int) -> Problem:
    x0 = np.tile(np.array([-1.2, 1.0]), n // 2)
    return Problem(
        f"rosenbrock-{n}",
        n,
        ext_rosenbrock,
        x0,
        _steady_start(x0),
        description=f"extended Rosenbrock, n={n}, MGH start (-1.2, 1, ...)",
    )


def _powell(n: int) -> Problem:
    x0 = np.tile(np.array([3.0, -1.0, 0.0, 1.0]), n // 4)
    return Problem(
        f"powell-{n}",
        n,
        ext_powell,
        x0,
        _steady_start(x0),
        description=f"extended Powell singular, n={n}, MGH start (3, -1, 0, 1, ...)",
    )


def _broyden(n: int) -> Problem:
    x0 = -np.ones(n)
    return Problem(
        f"broyden-tri-{n}",
        n,
        broyden_tridiagonal,
        x0,
        _steady_start(x0),
        description=f"Broyden tridiagonal (sum of squares), n={n}, MGH start (-1, ...)",
    )


def _quadratic(n: int, cond: float = 1e6, seed: int = 0) -> Problem:
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    q = q * np.sign(np.diag(r))  # Haar-distributed rotation
    eig = np.logspace(0.0, -np.log10(cond), n)  # 1 ... 1/cond, log-spaced
    A = (q * eig) @ q.T
    A = 0.5 * (A + A.T)
    xstar = rng.standard_normal(n)
    x0 = np.zeros(n)
    return Problem(
        f"quadratic-{n}",
        n,
        quadratic,
        x0,
        _steady_start(x0),
        args=(jnp.asarray(A), jnp.asarray(xstar)),
        description=(
            f"0.5 (x-x*)^T A (x-x*), n={n}, dense A = Q diag(eig) Q^T, eig log-spaced in "
            f"[1/{cond:.0e}, 1], Q random rotation (seed {seed}), x* ~ N(0, I), x0 = 0"
        ),
    )


def _logistic(n_features: int = 200, n_samples: int = 5000, lam: float = 1e-2, seed: int = 1) -> Problem:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    w_true = rng.standard_normal(n_features) / np.sqrt(n_features) * 3.0
    p = 1.0 / (1.0 + np.exp(-(X @ w_true)))
    y = (rng.uniform(size=n_samples) < p).astype(np.float64)
    x0 = np.zeros(n_features)
    return Problem(
        f"logistic-{n_features}",
        n_features,
        logistic,
        x0,
        _steady_start(x0),
        args=(jnp.asarray(X), jnp.asarray(y), jnp.asarray(lam, dtype=jnp.float64)),
        description=(
            f"L2-regularised logistic regression, {n_features} features, {n_samples} samples "
            f"(X ~ N(0,1), labels ~ Bernoulli(sigmoid(X w_true)), seed {seed}), lambda={lam:g}, x0 = 0"
        ),
    )


# name -> builder (built lazily so `--only` does not pay for the others' data)
BUILDERS: dict[str, Callable[[], Problem]] = {
    "rosenbrock-2": lambda: _rosenbrock(2),
    "rosenbrock-100": lambda: _rosenbrock(100),
    "rosenbrock-1000": lambda: _rosenbrock(1000),
    "rosenbrock-10000": lambda: _rosenbrock(10000),
    "powell-1000": lambda: _powell(1000),
    "broyden-tri-1000": lambda: _broyden(1000),
    "quadratic-1000": lambda: _quadratic(1000),
    "logistic-200": lambda: _logistic(),
}

QUICK = ["rosenbrock-2", "rosenbrock-1000", "logistic-200"]


def get(name: str) -> Problem:
    return BUILDERS[name]()


def warmup_problem() -> Problem:
    """Tiny throwaway problem used to absorb each library's one-off start-up costs."""
    x0 = np.array([1.0, -2.0, 0.5])

    def tiny(x):
        return jnp.sum((x - 1.0) ** 2) + 0.1 * jnp.sum(x**4)

    return Problem("warmup", 3, tiny, x0, x0 + 0.1)


# --------------------------------------------------------------------------- #
# Batch problem
# --------------------------------------------------------------------------- #

BATCH_SEED = 2024
BATCH_SEED_STEADY = 2025
BATCH_SCALE = 0.1


def batch_starts(size: int, seed: int) -> np.ndarray:
    """``size`` starts (size, 2) drawn around the MGH start (-1.2, 1)."""
    rng = np.random.default_rng(seed)
    return np.array([-1.2, 1.0]) + BATCH_SCALE * rng.standard_normal((size, 2))


def grad_fn(problem: Problem):
    """A jitted value_and_grad used by the harness to re-evaluate f and ||g||_inf."""
    return jax.jit(jax.value_and_grad(problem.make_fun()))
