"""The bound-constrained problems of Hock & Schittkowski (1981).

W. Hock and K. Schittkowski, "Test Examples for Nonlinear Programming Codes",
Lecture Notes in Economics and Mathematical Systems 187, Springer, 1981.

`BOUND_ONLY` holds every problem of the collection whose only constraints are
bounds on the variables: numbers 1, 2, 3, 4, 5, 25, 38, 45 and 110. Each has the
collection's standard start `x0` (outside the bounds for HS2 and HS45, as in the
book: `feasible_start=False`), its published optimal value `f_star` and minimiser
`x_star`. Where the book quotes a minimiser in closed
form (HS2, HS5) it is evaluated here to float64 precision; HS110's minimiser and
value are the book's ten digits.

Two traps for a local method: from HS2's projected start `(-2, 1.5)` descent reaches
the other local minimum, `x = (-1.2210262, 1.5)`, `f = 4.9412293`; at HS25's start
every residual's exponential underflows, so the gradient is ~0 and a gradient method
stops at once (`f = 32.835`). The functions use `jnp` with Python-float literals,
so they run in float32 and float64 under strict dtype promotion.
"""

import math

import jax.numpy as jnp
import numpy as np
from hs_problems import INF, HSProblem


def _rosenbrock(x):
    return 100.0 * (x[1] - x[0] ** 2) ** 2 + (1.0 - x[0]) ** 2


def hs003(x):
    return x[1] + 1e-5 * (x[1] - x[0]) ** 2


def hs004(x):
    return (x[0] + 1.0) ** 3 / 3.0 + x[1]


def hs005(x):
    return jnp.sin(x[0] + x[1]) + (x[0] - x[1]) ** 2 - 1.5 * x[0] + 2.5 * x[1] + 1.0


# HS25 (Holzmann's fit): u_i = 25 + (-50 ln(0.01 i))^(2/3), i = 1..99
_I25 = np.arange(1, 100, dtype=np.float64)
_U25 = 25.0 + (-50.0 * np.log(0.01 * _I25)) ** (2.0 / 3.0)


def hs025(x):
    i = jnp.asarray(_I25, dtype=x.dtype)
    u = jnp.asarray(_U25, dtype=x.dtype)
    r = -0.01 * i + jnp.exp(-((u - x[1]) ** x[2]) / x[0])
    return jnp.sum(r**2)


def hs038(x):
    # Colville's / Wood's function
    return (
        100.0 * (x[1] - x[0] ** 2) ** 2 + (1.0 - x[0]) ** 2
        + 90.0 * (x[3] - x[2] ** 2) ** 2 + (1.0 - x[2]) ** 2
        + 10.1 * ((x[1] - 1.0) ** 2 + (x[3] - 1.0) ** 2)
        + 19.8 * (x[1] - 1.0) * (x[3] - 1.0)
    )


def hs045(x):
    return 2.0 - jnp.prod(x) / 120.0


def hs110(x):
    return jnp.sum(jnp.log(x - 2.0) ** 2 + jnp.log(10.0 - x) ** 2) - jnp.prod(x) ** 0.2


def _hs002_x1() -> float:
    # the largest root of df/dx1 = 0 on x2 = 1.5, 400 x1^3 - 598 x1 - 2 = 0, by the
    # trigonometric formula: x1* = 2 a cos(arccos(1 / (400 a^3)) / 3), a = sqrt(598/1200)
    # (= 1.224370749, f* = 0.0504261879 as published)
    a = math.sqrt(598.0 / 1200.0)
    return 2.0 * a * math.cos(math.acos(1.0 / (400.0 * a**3)) / 3.0)


_X2 = (_hs002_x1(), 1.5)
_X5 = (-math.pi / 3.0 + 0.5, -math.pi / 3.0 - 0.5)

BOUND_ONLY: list[HSProblem] = [
    HSProblem("hs001", _rosenbrock, (-2.0, 1.0), 0.0, (1.0, 1.0),
              lower=(-INF, -1.5), upper=(INF, INF)),
    HSProblem("hs002", _rosenbrock, (-2.0, 1.0), 0.0504261879, _X2,
              lower=(-INF, 1.5), upper=(INF, INF), feasible_start=False),
    HSProblem("hs003", hs003, (10.0, 1.0), 0.0, (0.0, 0.0),
              lower=(-INF, 0.0), upper=(INF, INF)),
    HSProblem("hs004", hs004, (1.125, 0.125), 8.0 / 3.0, (1.0, 0.0),
              lower=(1.0, 0.0), upper=(INF, INF)),
    HSProblem("hs005", hs005, (0.0, 0.0), -0.5 * math.sqrt(3.0) - math.pi / 3.0, _X5,
              lower=(-1.5, -3.0), upper=(4.0, 3.0)),
    HSProblem("hs025", hs025, (100.0, 12.5, 3.0), 0.0, (50.0, 25.0, 1.5),
              lower=(0.1, 0.0, 0.0), upper=(100.0, 25.6, 5.0)),
    HSProblem("hs038", hs038, (-3.0, -1.0, -3.0, -1.0), 0.0, (1.0, 1.0, 1.0, 1.0),
              lower=(-10.0,) * 4, upper=(10.0,) * 4),
    HSProblem("hs045", hs045, (2.0,) * 5, 1.0, (1.0, 2.0, 3.0, 4.0, 5.0),
              lower=(0.0,) * 5, upper=(1.0, 2.0, 3.0, 4.0, 5.0), feasible_start=False),
    HSProblem("hs110", hs110, (9.0,) * 10, -45.77846971, (9.35025655,) * 10,
              lower=(2.001,) * 10, upper=(9.999,) * 10),
]
