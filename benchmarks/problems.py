"""Benchmark problems and the constants every section shares.

Every objective has the signature ``fun(x, *args) -> scalar`` where ``args`` is a
tuple of (possibly empty) data arrays.  Data are passed as *arguments* (traced),
never closed over as constants, so that no solver gets an XLA compile that
constant-folds an 8 MB matrix and all solvers see the same program.

``Problem.make_fun()`` returns a brand-new function object each time (a fresh
closure), so JAX's / jaxmin's tracing caches, which key on function identity,
cannot help a "first call" measurement.

Extended Rosenbrock and the logistic losses are the ones of ``python -m jaxmin``
and the tests (``jaxmin.testing._objectives``); the Hock-Schittkowski problems are
the test suite's (``hs_module``).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from typing import Callable

import jax.numpy as jnp
import numpy as np

from jaxmin.testing._objectives import (
    budget,
    extended_rosenbrock,
    half_squared_distance,
    logistic_loss,
    mean_variance,
    ridge_logistic_loss,
)

# The common target and limits of the unconstrained and bounded sections: every
# solver stops at max|g| <= GTOL (bounds: the projected gradient), quasi-Newton
# history HISTORY, at most MAXITER iterations.
GTOL = 1e-6
HISTORY = 10
MAXITER = 10_000

__all__ = ["GTOL", "HISTORY", "MAXITER", "extended_rosenbrock", "logistic_loss", "ridge_logistic_loss",
           "half_squared_distance", "budget", "mean_variance"]

TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")


def hs_module(name: str):
    """A problem module of the test suite (``hs_problems``, ``hs_bounds``): the
    Hock-Schittkowski problems the bounds and SQP sections run."""
    if TESTS not in sys.path:
        sys.path.insert(0, TESTS)
    return importlib.import_module(name)


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


def diagonal_quadratic(x, eig, xstar):
    """0.5 (x - x*)^T diag(eig) (x - x*): the dense quadratic in its eigenbasis (L-BFGS,
    whose first matrix is a multiple of I, takes the same steps in either basis)."""
    d = x - xstar
    return 0.5 * jnp.dot(d, eig * d)


# --------------------------------------------------------------------------- #
# Instances
# --------------------------------------------------------------------------- #


def _rosenbrock(n: int) -> Problem:
    x0 = np.tile(np.array([-1.2, 1.0]), n // 2)
    return Problem(
        f"rosenbrock-{n}",
        n,
        extended_rosenbrock,
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


def _diagonal_quadratic(n: int, cond: float = 1e6, seed: int = 0) -> Problem:
    xstar = np.random.default_rng(seed).standard_normal(n)
    x0 = np.zeros(n)
    return Problem(
        f"diagonal-quadratic-{n}",
        n,
        diagonal_quadratic,
        x0,
        _steady_start(x0),
        args=(jnp.asarray(np.logspace(0.0, -np.log10(cond), n)), jnp.asarray(xstar)),
        description=(
            f"0.5 (x-x*)^T diag(eig) (x-x*), n={n}, eig log-spaced in [1/{cond:.0e}, 1], "
            f"x* ~ N(0, I) (seed {seed}), x0 = 0"
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
        ridge_logistic_loss,
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

# problems of other sections (not in the L-BFGS table)
LARGE: dict[str, Callable[[], Problem]] = {
    "diagonal-quadratic-30000": lambda: _diagonal_quadratic(30_000),
}

QUICK = ["rosenbrock-2", "rosenbrock-1000", "logistic-200"]


def get(name: str) -> Problem:
    return {**BUILDERS, **LARGE}[name]()


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


def batch_problem(size: int) -> Problem:
    """``size`` Rosenbrock n=2 problems, one start per row (the batch section)."""
    return dataclasses.replace(
        get("rosenbrock-2"),
        name=f"batch-rosenbrock-2x{size}",
        x0=batch_starts(size, BATCH_SEED),
        x0_steady=batch_starts(size, BATCH_SEED_STEADY),
        description=f"vmap over {size} Rosenbrock n=2 problems",
    )


# --------------------------------------------------------------------------- #
# Constrained problems of medium size (the SQP section), with exact references
# --------------------------------------------------------------------------- #


@dataclasses.dataclass(frozen=True, eq=False)
class Constrained:
    """``min fn(x, *args)`` s.t. ``eq(x, *args) == 0``, ``ineq(x, *args) >= 0``,
    ``lower <= x <= upper``, with its optimum ``f_star`` (and ``x_star`` if unique)."""

    name: str
    fn: Callable
    x0: np.ndarray
    f_star: float
    x_star: np.ndarray | None = None
    eq: Callable | None = None
    ineq: Callable | None = None
    bounds: tuple | None = None  # (lower, upper) arrays
    args: tuple = ()
    description: str = ""

    @property
    def n(self) -> int:
        return int(self.x0.shape[0])


def project_simplex(p: np.ndarray) -> np.ndarray:
    """Euclidean projection onto {x >= 0, sum(x) = 1} by sorting (Held, Wolfe &
    Crowder 1974; Duchi et al. 2008): ``max(p - tau, 0)``."""
    u = np.sort(p)[::-1]
    css = np.cumsum(u) - 1.0
    k = np.nonzero(u * np.arange(1, p.size + 1) > css)[0][-1]
    return np.maximum(p - css[k] / (k + 1), 0.0)


def _nonnegative(n: int) -> tuple:
    return np.zeros(n), np.full(n, np.inf)


def simplex_projection(n: int) -> Constrained:
    """The projection of p ~ N(0, I) (seed n, as in tests/test_sqp_float32.py)."""
    seed = n
    p = np.random.default_rng(seed).standard_normal(n)
    x_star = project_simplex(p)
    return Constrained(
        f"simplex-projection-{n}", half_squared_distance, np.full(n, 1.0 / n),
        float(0.5 * np.sum((x_star - p) ** 2)), x_star, eq=budget, bounds=_nonnegative(n),
        args=(jnp.asarray(p),),
        description=f"½‖x − p‖², sum(x) = 1, x ≥ 0, n = {n}, p ~ N(0, I) (seed {seed}), x0 = 1/n; "
        "x* by sorting",
    )


def _mean_variance_reference(mu, sigma, gamma, iters: int = 3000) -> np.ndarray:
    """The minimiser of ``mean_variance`` on the simplex: accelerated projected
    gradient (Beck & Teboulle 2009) finds the support, the KKT system on that support
    gives x* exactly, and the KKT conditions are then checked (x*_i > 0 on the
    support; on its complement the gradient exceeds the budget's multiplier)."""
    grad = lambda w: gamma * sigma @ w - mu  # noqa: E731
    step = 1.0 / (gamma * np.linalg.eigvalsh(sigma)[-1])
    w = y = np.full(mu.size, 1.0 / mu.size)
    t = 1.0
    for _ in range(iters):
        w_next = project_simplex(y - step * grad(y))
        t_next = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        y, w, t = w_next + (t - 1.0) / t_next * (w_next - w), w_next, t_next
    free = w > 1e-9
    m = int(free.sum())
    kkt = np.zeros((m + 1, m + 1))
    kkt[:m, :m], kkt[:m, m], kkt[m, :m] = gamma * sigma[np.ix_(free, free)], 1.0, 1.0
    sol = np.linalg.solve(kkt, np.r_[mu[free], 1.0])
    x = np.zeros(mu.size)
    x[free] = sol[:m]
    reduced = grad(x) + sol[m]  # = the bound multipliers: 0 on the support, >= 0 off it
    if x[free].min() <= 0 or (~free).any() and reduced[~free].min() < -1e-12:
        raise RuntimeError("mean-variance reference: the KKT conditions do not hold")
    return x


def portfolio(n: int = 500, gamma: float = 10.0, seed: int = 0) -> Constrained:
    """Mean-variance portfolio (the form of notebooks/03_constrained.ipynb, random
    data): one-factor correlation 0.3, volatilities 5-30 %, returns 3-15 %."""
    rng = np.random.default_rng(seed)
    mu = 0.03 + 0.12 * rng.uniform(size=n)
    vol = 0.05 + 0.25 * rng.uniform(size=n)
    sigma = (0.3 + 0.7 * np.eye(n)) * np.outer(vol, vol) + 1e-3 * np.diag(rng.uniform(size=n))
    x_star = _mean_variance_reference(mu, sigma, gamma)
    f_star = float(0.5 * gamma * x_star @ sigma @ x_star - mu @ x_star)
    return Constrained(
        f"portfolio-{n}", mean_variance, np.full(n, 1.0 / n), f_star, x_star, eq=budget,
        bounds=_nonnegative(n), args=(jnp.asarray(mu), jnp.asarray(sigma), jnp.asarray(gamma)),
        description=f"Markowitz mean-variance, {n} assets: γ/2 wᵀΣw − μᵀw, γ = {gamma:g}, sum(w) = 1, "
        f"w ≥ 0, w0 = 1/n; μ ~ U(3 %, 15 %), σ ~ U(5 %, 30 %), correlation 0.3 (seed {seed}); "
        f"x* from the KKT system on the support found by FISTA ({int((x_star > 0).sum())} assets held)",
    )


# name -> builder; the SQP section's medium-size problems
CONSTRAINED: dict[str, Callable[[], Constrained]] = {
    "simplex-projection-10": lambda: simplex_projection(10),
    "simplex-projection-200": lambda: simplex_projection(200),
    "simplex-projection-1000": lambda: simplex_projection(1000),
    "portfolio-500": lambda: portfolio(500),
}
