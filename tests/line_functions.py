"""1-D test functions for the line searches: `FUNCTIONS[name] = (fn, x0)`, with
`fn` taking a 1-element array; plus a NaN wall."""

import jax.numpy as jnp


def phi_quartic(x):
    return jnp.sum((x - 2.0) ** 4 + 0.5 * x**2)


def phi_quadratic(x):
    return jnp.sum(10.0 * (x - 0.3) ** 2)


def phi_log(x):
    # NaN beyond x = 1: trial steps past it must be shrunk, never accepted
    return jnp.sum(-jnp.log(1.0 - x) - 5.0 * x)  # minimiser 0.8


def phi_nan_wall(x):
    return jnp.sum(jnp.where(x > 0.6, jnp.nan, -x))


FUNCTIONS = {
    "quartic": (phi_quartic, 0.0),
    "quadratic": (phi_quadratic, -2.0),
    "log": (phi_log, -3.0),
    "mt_1": (lambda x: jnp.sum(-x / (x**2 + 2.0)), 0.0),  # Moré & Thuente's test (5.1)
    "mt_2": (lambda x: jnp.sum((x + 0.004) ** 5 - 2 * (x + 0.004) ** 4), 0.0),  # M&T (5.2)
}
