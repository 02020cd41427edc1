"""Objectives shared by the showcase (`python -m jaxmin`), the benchmarks and the tests.

Written once so that every place that says "extended Rosenbrock" or "logistic
regression" runs the same arithmetic: the benchmarks, the demo and the test tables
give the same numbers. The Moré–Garbow–Hillstrom sum-of-squares forms (e.g. MGH #21
as `sum r_i^2` with `r = 10 (x_2i - x_2i-1^2), 1 - x_2i-1`) live in `_mgh.py`; the
forms here are the textbook ones, whose rounding differs in the last bits.
"""

import jax.numpy as jnp


def extended_rosenbrock(x):
    """Extended Rosenbrock (Moré, Garbow & Hillstrom 1981, #21), n even:
    `sum_i 100 (x_2i - x_2i-1^2)^2 + (1 - x_2i-1)^2`; minimum 0 at x = 1."""
    odd, even = x[0::2], x[1::2]
    return jnp.sum(100.0 * (even - odd**2) ** 2 + (1.0 - odd) ** 2)


def logistic_loss(w, X, y):
    """Mean binary cross-entropy of the linear model `X @ w`, labels `y` in {0, 1}:
    `mean(log(1 + exp(z)) - y z)`, `z = X w`."""
    z = X @ w
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z)


def ridge_logistic_loss(w, X, y, lam):
    """`logistic_loss(w, X, y) + lam / 2 |w|^2`: L2-regularised logistic regression."""
    return logistic_loss(w, X, y) + 0.5 * lam * jnp.dot(w, w)


def half_squared_distance(x, p):
    """`|x - p|^2 / 2`: with `budget` as `eq` and bounds `x >= 0`, the Euclidean
    projection of `p` onto the probability simplex."""
    return 0.5 * jnp.sum((x - p) ** 2)


def budget(x, *args):
    """`[sum(x) - 1]`: the budget (simplex) equality constraint, `eq(x) == 0`; extra
    arguments (the objective's) are ignored."""
    return jnp.stack([jnp.sum(x) - 1.0])


def mean_variance(w, mu, sigma, gamma):
    """`gamma / 2 w' sigma w - mu' w`: Markowitz's mean-variance objective of the
    portfolio weights `w` (expected returns `mu`, covariance `sigma`, risk aversion
    `gamma`)."""
    return 0.5 * gamma * jnp.dot(w, sigma @ w) - jnp.dot(mu, w)
