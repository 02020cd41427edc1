"""Hock & Schittkowski (1981) problems with equality and inequality constraints.

W. Hock and K. Schittkowski, "Test Examples for Nonlinear Programming Codes",
Lecture Notes in Economics and Mathematical Systems 187, Springer, 1981.

`CONSTRAINED` holds 58 problems of the collection: equality-only, inequality-only and
mixed, many with bounds, each from its standard start (`feasible_start=False` where the
start violates a constraint or a bound), with the published optimal value `f_star`
and, where the book gives it, the minimiser `x_star` (in closed form where the book
has one). Constraints follow SciPy's SLSQP convention: `eq(x) == 0`, `ineq(x) >= 0`,
each returning a 1-D array. HS13 is degenerate: at its minimiser (1, 0) the active
gradients are linearly dependent (LICQ fails) and no KKT multipliers exist.
"""

import math

import jax.numpy as jnp
from hs_problems import INF, HSProblem

S2, S3 = math.sqrt(2.0), math.sqrt(3.0)


def _v(*cs):
    return jnp.stack(cs)


def _rosen(x):
    return 100.0 * (x[1] - x[0] ** 2) ** 2 + (1.0 - x[0]) ** 2


def _f46(x):
    return (x[0] - x[1]) ** 2 + (x[2] - 1.0) ** 2 + (x[3] - 1.0) ** 4 + (x[4] - 1.0) ** 6


def _f52(x):
    return (4.0 * x[0] - x[1]) ** 2 + (x[1] + x[2] - 2.0) ** 2 + (x[3] - 1.0) ** 2 + (x[4] - 1.0) ** 2


def _f53(x):
    return (x[0] - x[1]) ** 2 + (x[1] + x[2] - 2.0) ** 2 + (x[3] - 1.0) ** 2 + (x[4] - 1.0) ** 2


def _eq52(x):
    return _v(x[0] + 3.0 * x[1], x[2] + x[3] - 2.0 * x[4], x[1] - x[4])


def _eq78(x):
    return _v(jnp.sum(x**2) - 10.0, x[1] * x[2] - 5.0 * x[3] * x[4], x[0] ** 3 + x[1] ** 3 + 1.0)


def _f100(x):
    return ((x[0] - 10.0) ** 2 + 5.0 * (x[1] - 12.0) ** 2 + x[2] ** 4 + 3.0 * (x[3] - 11.0) ** 2
            + 10.0 * x[4] ** 6 + 7.0 * x[5] ** 2 + x[6] ** 4 - 4.0 * x[5] * x[6] - 10.0 * x[5]
            - 8.0 * x[6])


def _in100(x):
    return _v(
        127.0 - 2.0 * x[0] ** 2 - 3.0 * x[1] ** 4 - x[2] - 4.0 * x[3] ** 2 - 5.0 * x[4],
        282.0 - 7.0 * x[0] - 3.0 * x[1] - 10.0 * x[2] ** 2 - x[3] + x[4],
        196.0 - 23.0 * x[0] - x[1] ** 2 - 6.0 * x[5] ** 2 + 8.0 * x[6],
        -4.0 * x[0] ** 2 - x[1] ** 2 + 3.0 * x[0] * x[1] - 2.0 * x[2] ** 2 - 5.0 * x[5] + 11.0 * x[6],
    )



def _abc83(x):
    a = 85.334407 + 0.0056858 * x[1] * x[4] + 0.0006262 * x[0] * x[3] - 0.0022053 * x[2] * x[4]
    b = 80.51249 + 0.0071317 * x[1] * x[4] + 0.0029955 * x[0] * x[1] + 0.0021813 * x[2] ** 2
    c = 9.300961 + 0.0047026 * x[2] * x[4] + 0.0012547 * x[0] * x[2] + 0.0019085 * x[2] * x[3]
    return _v(a, 92.0 - a, b - 90.0, 110.0 - b, c - 20.0, 25.0 - c)


def _in106(x):
    return _v(
        1.0 - 0.0025 * (x[3] + x[5]), 1.0 - 0.0025 * (x[4] + x[6] - x[3]), 1.0 - 0.01 * (x[7] - x[4]),
        x[0] * x[5] - 833.33252 * x[3] - 100.0 * x[0] + 83333.333,
        x[1] * x[6] - 1250.0 * x[4] - x[1] * x[3] + 1250.0 * x[3],
        x[2] * x[7] - 1250000.0 - x[2] * x[4] + 2500.0 * x[4],
    )


P = HSProblem
_40 = (2.0 ** (-1 / 3), 2.0 ** (-1 / 2), 2.0 ** (-11 / 12), 2.0 ** (-1 / 4))

CONSTRAINED: list[HSProblem] = [
    # --- equality constraints only -------------------------------------------------
    P("hs006", lambda x: (1.0 - x[0]) ** 2, (-1.2, 1.0), 0.0, (1.0, 1.0),
      eq=lambda x: _v(10.0 * (x[1] - x[0] ** 2)), feasible_start=False),
    P("hs007", lambda x: jnp.log(1.0 + x[0] ** 2) - x[1], (2.0, 2.0), -S3, (0.0, S3),
      eq=lambda x: _v((1.0 + x[0] ** 2) ** 2 + x[1] ** 2 - 4.0), feasible_start=False),
    P("hs008", lambda x: -1.0 + 0.0 * x[0], (2.0, 1.0), -1.0, None,
      eq=lambda x: _v(x[0] ** 2 + x[1] ** 2 - 25.0, x[0] * x[1] - 9.0), feasible_start=False),
    P("hs009", lambda x: jnp.sin(math.pi * x[0] / 12.0) * jnp.cos(math.pi * x[1] / 16.0),
      (0.0, 0.0), -0.5, None, eq=lambda x: _v(4.0 * x[0] - 3.0 * x[1])),
    P("hs026", lambda x: (x[0] - x[1]) ** 2 + (x[1] - x[2]) ** 4, (-2.6, 2.0, 2.0), 0.0,
      (1.0, 1.0, 1.0), eq=lambda x: _v((1.0 + x[1] ** 2) * x[0] + x[2] ** 4 - 3.0),
      feasible_start=False),
    P("hs027", lambda x: 0.01 * (x[0] - 1.0) ** 2 + (x[1] - x[0] ** 2) ** 2, (2.0, 2.0, 2.0),
      0.04, (-1.0, 1.0, 0.0), eq=lambda x: _v(x[0] + x[2] ** 2 + 1.0), feasible_start=False),
    P("hs028", lambda x: (x[0] + x[1]) ** 2 + (x[1] + x[2]) ** 2, (-4.0, 1.0, 1.0), 0.0,
      (0.5, -0.5, 0.5), eq=lambda x: _v(x[0] + 2.0 * x[1] + 3.0 * x[2] - 1.0)),
    P("hs039", lambda x: -x[0], (2.0, 2.0, 2.0, 2.0), -1.0, (1.0, 1.0, 0.0, 0.0),
      eq=lambda x: _v(x[1] - x[0] ** 3 - x[2] ** 2, x[0] ** 2 - x[1] - x[3] ** 2),
      feasible_start=False),
    P("hs040", lambda x: -x[0] * x[1] * x[2] * x[3], (0.8,) * 4, -0.25, _40,
      eq=lambda x: _v(x[0] ** 3 + x[1] ** 2 - 1.0, x[0] ** 2 * x[3] - x[2], x[3] ** 2 - x[1]),
      feasible_start=False),
    P("hs042", lambda x: (x[0] - 1.0) ** 2 + (x[1] - 2.0) ** 2 + (x[2] - 3.0) ** 2 + (x[3] - 4.0) ** 2,
      (1.0,) * 4, 28.0 - 10.0 * S2, (2.0, 2.0, 0.6 * S2, 0.8 * S2),
      eq=lambda x: _v(x[0] - 2.0, x[2] ** 2 + x[3] ** 2 - 2.0), feasible_start=False),
    P("hs046", _f46, (0.5 * S2, 1.75, 0.5, 2.0, 2.0), 0.0, (1.0,) * 5,
      eq=lambda x: _v(x[0] ** 2 * x[3] + jnp.sin(x[3] - x[4]) - 1.0, x[1] + x[2] ** 4 * x[3] ** 2 - 2.0),
      feasible_start=False),
    P("hs048", lambda x: (x[0] - 1.0) ** 2 + (x[1] - x[2]) ** 2 + (x[3] - x[4]) ** 2,
      (3.0, 5.0, -3.0, 2.0, -2.0), 0.0, (1.0,) * 5,
      eq=lambda x: _v(jnp.sum(x) - 5.0, x[2] - 2.0 * (x[3] + x[4]) + 3.0)),
    P("hs049", _f46, (10.0, 7.0, 2.0, -3.0, 0.8), 0.0, (1.0,) * 5,
      eq=lambda x: _v(x[0] + x[1] + x[2] + 4.0 * x[3] - 7.0, x[2] + 5.0 * x[4] - 6.0)),
    P("hs050", lambda x: (x[0] - x[1]) ** 2 + (x[1] - x[2]) ** 2 + (x[2] - x[3]) ** 4 + (x[3] - x[4]) ** 2,
      (35.0, -31.0, 11.0, 5.0, -5.0), 0.0, (1.0,) * 5,
      eq=lambda x: _v(x[0] + 2.0 * x[1] + 3.0 * x[2] - 6.0, x[1] + 2.0 * x[2] + 3.0 * x[3] - 6.0,
                      x[2] + 2.0 * x[3] + 3.0 * x[4] - 6.0)),
    P("hs051", lambda x: (x[0] - x[1]) ** 2 + (x[1] + x[2] - 2.0) ** 2 + (x[3] - 1.0) ** 2 + (x[4] - 1.0) ** 2,
      (2.5, 0.5, 2.0, -1.0, 0.5), 0.0, (1.0,) * 5,
      eq=lambda x: _v(x[0] + 3.0 * x[1] - 4.0, x[2] + x[3] - 2.0 * x[4], x[1] - x[4])),
    P("hs052", _f52, (2.0,) * 5, 1859.0 / 349.0, None, eq=_eq52, feasible_start=False),
    P("hs053", _f53, (2.0,) * 5, 176.0 / 43.0, None, eq=_eq52,
      lower=(-10.0,) * 5, upper=(10.0,) * 5, feasible_start=False),
    P("hs060", lambda x: (x[0] - 1.0) ** 2 + (x[0] - x[1]) ** 2 + (x[1] - x[2]) ** 4, (2.0,) * 3,
      0.03256820025, None, eq=lambda x: _v(x[0] * (1.0 + x[1] ** 2) + x[2] ** 4 - 4.0 - 3.0 * S2),
      lower=(-10.0,) * 3, upper=(10.0,) * 3, feasible_start=False),
    P("hs063", lambda x: 1000.0 - x[0] ** 2 - 2.0 * x[1] ** 2 - x[2] ** 2 - x[0] * x[1] - x[0] * x[2],
      (2.0,) * 3, 961.7151721, None,
      eq=lambda x: _v(8.0 * x[0] + 14.0 * x[1] + 7.0 * x[2] - 56.0, jnp.sum(x**2) - 25.0),
      lower=(0.0,) * 3, upper=(INF,) * 3, feasible_start=False),
    P("hs077", lambda x: (x[0] - 1.0) ** 2 + (x[0] - x[1]) ** 2 + (x[2] - 1.0) ** 2 + (x[3] - 1.0) ** 4
      + (x[4] - 1.0) ** 6, (2.0,) * 5, 0.24150513, None,
      eq=lambda x: _v(x[0] ** 2 * x[3] + jnp.sin(x[3] - x[4]) - 2.0 * S2,
                      x[1] + x[2] ** 4 * x[3] ** 2 - 8.0 - S2), feasible_start=False),
    P("hs078", lambda x: jnp.prod(x), (-2.0, 1.5, 2.0, -1.0, -1.0), -2.91970041, None,
      eq=_eq78, feasible_start=False),
    P("hs079", lambda x: (x[0] - 1.0) ** 2 + (x[0] - x[1]) ** 2 + (x[1] - x[2]) ** 2 + (x[2] - x[3]) ** 4
      + (x[3] - x[4]) ** 4, (2.0,) * 5, 0.0787768209, None,
      eq=lambda x: _v(x[0] + x[1] ** 2 + x[2] ** 3 - 2.0 - 3.0 * S2, x[1] - x[2] ** 2 + x[3] + 2.0 - 2.0 * S2,
                      x[0] * x[4] - 2.0), feasible_start=False),
    P("hs080", lambda x: jnp.exp(jnp.prod(x)), (-2.0, 2.0, 2.0, -1.0, -1.0), 0.0539498478, None,
      eq=_eq78, lower=(-2.3, -2.3, -3.2, -3.2, -3.2), upper=(2.3, 2.3, 3.2, 3.2, 3.2),
      feasible_start=False),
    # --- inequality constraints only (and bounds) -----------------------------------
    P("hs010", lambda x: x[0] - x[1], (-10.0, 10.0), -1.0, (0.0, 1.0),
      ineq=lambda x: _v(-3.0 * x[0] ** 2 + 2.0 * x[0] * x[1] - x[1] ** 2 + 1.0), feasible_start=False),
    P("hs011", lambda x: (x[0] - 5.0) ** 2 + x[1] ** 2 - 25.0, (4.9, 0.1), -8.498464223,
      (1.234679, 1.524420), ineq=lambda x: _v(-x[0] ** 2 + x[1]), feasible_start=False),
    P("hs012", lambda x: 0.5 * x[0] ** 2 + x[1] ** 2 - x[0] * x[1] - 7.0 * x[0] - 7.0 * x[1],
      (0.0, 0.0), -30.0, (2.0, 3.0), ineq=lambda x: _v(25.0 - 4.0 * x[0] ** 2 - x[1] ** 2)),
    P("hs013", lambda x: (x[0] - 2.0) ** 2 + x[1] ** 2, (-2.0, -2.0), 1.0, (1.0, 0.0),
      ineq=lambda x: _v((1.0 - x[0]) ** 3 - x[1]), lower=(0.0, 0.0), upper=(INF, INF),
      feasible_start=False),
    P("hs015", _rosen, (-2.0, 1.0), 306.5, (0.5, 2.0),
      ineq=lambda x: _v(x[0] * x[1] - 1.0, x[0] + x[1] ** 2), lower=(-INF, -INF), upper=(0.5, INF),
      feasible_start=False),
    P("hs016", _rosen, (-2.0, 1.0), 0.25, (0.5, 0.25),
      ineq=lambda x: _v(x[0] + x[1] ** 2, x[0] ** 2 + x[1]), lower=(-0.5, -INF), upper=(0.5, 1.0),
      feasible_start=False),
    P("hs017", _rosen, (-2.0, 1.0), 1.0, (0.0, 0.0),
      ineq=lambda x: _v(x[1] ** 2 - x[0], x[0] ** 2 - x[1]), lower=(-0.5, -INF), upper=(0.5, 1.0),
      feasible_start=False),
    P("hs018", lambda x: 0.01 * x[0] ** 2 + x[1] ** 2, (2.0, 2.0), 5.0, (math.sqrt(250.0), math.sqrt(2.5)),
      ineq=lambda x: _v(x[0] * x[1] - 25.0, x[0] ** 2 + x[1] ** 2 - 25.0),
      lower=(2.0, 0.0), upper=(50.0, 50.0), feasible_start=False),
    P("hs019", lambda x: (x[0] - 10.0) ** 3 + (x[1] - 20.0) ** 3, (20.1, 5.84), -6961.81381,
      (14.095, 0.84296079),
      ineq=lambda x: _v((x[0] - 5.0) ** 2 + (x[1] - 5.0) ** 2 - 100.0,
                        -((x[1] - 5.0) ** 2) - (x[0] - 6.0) ** 2 + 82.81),
      lower=(13.0, 0.0), upper=(100.0, 100.0)),
    P("hs020", _rosen, (-2.0, 1.0), 81.5 - 25.0 * S3, (0.5, 0.5 * S3),
      ineq=lambda x: _v(x[0] + x[1] ** 2, x[0] ** 2 + x[1], x[0] ** 2 + x[1] ** 2 - 1.0),
      lower=(-0.5, -INF), upper=(0.5, INF), feasible_start=False),
    P("hs021", lambda x: 0.01 * x[0] ** 2 + x[1] ** 2 - 100.0, (-1.0, -1.0), -99.96, (2.0, 0.0),
      ineq=lambda x: _v(10.0 * x[0] - x[1] - 10.0), lower=(2.0, -50.0), upper=(50.0, 50.0),
      feasible_start=False),
    P("hs022", lambda x: (x[0] - 2.0) ** 2 + (x[1] - 1.0) ** 2, (2.0, 2.0), 1.0, (1.0, 1.0),
      ineq=lambda x: _v(-x[0] - x[1] + 2.0, -x[0] ** 2 + x[1]), feasible_start=False),
    P("hs023", lambda x: x[0] ** 2 + x[1] ** 2, (3.0, 1.0), 2.0, (1.0, 1.0),
      ineq=lambda x: _v(x[0] + x[1] - 1.0, x[0] ** 2 + x[1] ** 2 - 1.0, 9.0 * x[0] ** 2 + x[1] ** 2 - 9.0,
                        x[0] ** 2 - x[1], x[1] ** 2 - x[0]),
      lower=(-50.0, -50.0), upper=(50.0, 50.0), feasible_start=False),
    P("hs024", lambda x: ((x[0] - 3.0) ** 2 - 9.0) * x[1] ** 3 / (27.0 * S3), (1.0, 0.5), -1.0, (3.0, S3),
      ineq=lambda x: _v(x[0] / S3 - x[1], x[0] + S3 * x[1], -x[0] - S3 * x[1] + 6.0),
      lower=(0.0, 0.0), upper=(INF, INF)),
    P("hs029", lambda x: -x[0] * x[1] * x[2], (1.0, 1.0, 1.0), -16.0 * S2, (4.0, 2.0 * S2, 2.0),
      ineq=lambda x: _v(-x[0] ** 2 - 2.0 * x[1] ** 2 - 4.0 * x[2] ** 2 + 48.0)),
    P("hs030", lambda x: jnp.sum(x**2), (1.0, 1.0, 1.0), 1.0, (1.0, 0.0, 0.0),
      ineq=lambda x: _v(x[0] ** 2 + x[1] ** 2 - 1.0), lower=(1.0, -10.0, -10.0), upper=(10.0, 10.0, 10.0)),
    P("hs031", lambda x: 9.0 * x[0] ** 2 + x[1] ** 2 + 9.0 * x[2] ** 2, (1.0, 1.0, 1.0), 6.0,
      (1.0 / S3, S3, 0.0), ineq=lambda x: _v(x[0] * x[1] - 1.0),
      lower=(-10.0, 1.0, -10.0), upper=(10.0, 10.0, 1.0)),
    P("hs033", lambda x: (x[0] - 1.0) * (x[0] - 2.0) * (x[0] - 3.0) + x[2], (0.0, 0.0, 3.0), S2 - 6.0,
      (0.0, S2, S2),
      ineq=lambda x: _v(x[2] ** 2 - x[0] ** 2 - x[1] ** 2, x[0] ** 2 + x[1] ** 2 + x[2] ** 2 - 4.0),
      lower=(0.0, 0.0, 0.0), upper=(INF, INF, 5.0)),
    P("hs034", lambda x: -x[0], (0.0, 1.05, 2.9), -math.log(math.log(10.0)),
      (math.log(math.log(10.0)), math.log(10.0), 10.0),
      ineq=lambda x: _v(x[1] - jnp.exp(x[0]), x[2] - jnp.exp(x[1])),
      lower=(0.0, 0.0, 0.0), upper=(100.0, 100.0, 10.0)),
    P("hs035", lambda x: 9.0 - 8.0 * x[0] - 6.0 * x[1] - 4.0 * x[2] + 2.0 * x[0] ** 2 + 2.0 * x[1] ** 2
      + x[2] ** 2 + 2.0 * x[0] * x[1] + 2.0 * x[0] * x[2], (0.5, 0.5, 0.5), 1.0 / 9.0,
      (4.0 / 3.0, 7.0 / 9.0, 4.0 / 9.0), ineq=lambda x: _v(3.0 - x[0] - x[1] - 2.0 * x[2]),
      lower=(0.0, 0.0, 0.0), upper=(INF, INF, INF)),
    P("hs036", lambda x: -x[0] * x[1] * x[2], (10.0, 10.0, 10.0), -3300.0, (20.0, 11.0, 15.0),
      ineq=lambda x: _v(72.0 - x[0] - 2.0 * x[1] - 2.0 * x[2]),
      lower=(0.0, 0.0, 0.0), upper=(20.0, 11.0, 42.0)),
    P("hs037", lambda x: -x[0] * x[1] * x[2], (10.0, 10.0, 10.0), -3456.0, (24.0, 12.0, 12.0),
      ineq=lambda x: _v(72.0 - x[0] - 2.0 * x[1] - 2.0 * x[2], x[0] + 2.0 * x[1] + 2.0 * x[2]),
      lower=(0.0, 0.0, 0.0), upper=(42.0, 42.0, 42.0)),
    P("hs043", lambda x: x[0] ** 2 + x[1] ** 2 + 2.0 * x[2] ** 2 + x[3] ** 2 - 5.0 * x[0] - 5.0 * x[1]
      - 21.0 * x[2] + 7.0 * x[3], (0.0,) * 4, -44.0, (0.0, 1.0, 2.0, -1.0),
      ineq=lambda x: _v(
          8.0 - x[0] ** 2 - x[1] ** 2 - x[2] ** 2 - x[3] ** 2 - x[0] + x[1] - x[2] + x[3],
          10.0 - x[0] ** 2 - 2.0 * x[1] ** 2 - x[2] ** 2 - 2.0 * x[3] ** 2 + x[0] + x[3],
          5.0 - 2.0 * x[0] ** 2 - x[1] ** 2 - x[2] ** 2 - 2.0 * x[0] + x[1] + x[3])),
    P("hs044", lambda x: x[0] - x[1] - x[2] - x[0] * x[2] + x[0] * x[3] + x[1] * x[2] - x[1] * x[3],
      (0.0,) * 4, -15.0, (0.0, 3.0, 0.0, 4.0),
      ineq=lambda x: _v(8.0 - x[0] - 2.0 * x[1], 12.0 - 4.0 * x[0] - x[1], 12.0 - 3.0 * x[0] - 4.0 * x[1],
                        8.0 - 2.0 * x[2] - x[3], 8.0 - x[2] - 2.0 * x[3], 5.0 - x[2] - x[3]),
      lower=(0.0,) * 4, upper=(INF,) * 4),
    P("hs065", lambda x: (x[0] - x[1]) ** 2 + (x[0] + x[1] - 10.0) ** 2 / 9.0 + (x[2] - 5.0) ** 2,
      (-5.0, 5.0, 0.0), 0.9535288567, None,
      ineq=lambda x: _v(48.0 - x[0] ** 2 - x[1] ** 2 - x[2] ** 2),
      lower=(-4.5, -4.5, -5.0), upper=(4.5, 4.5, 5.0), feasible_start=False),
    P("hs066", lambda x: 0.2 * x[2] - 0.8 * x[0], (0.0, 1.05, 2.9), 0.5181632741, None,
      ineq=lambda x: _v(x[1] - jnp.exp(x[0]), x[2] - jnp.exp(x[1])),
      lower=(0.0, 0.0, 0.0), upper=(100.0, 100.0, 10.0)),
    P("hs076", lambda x: x[0] ** 2 + 0.5 * x[1] ** 2 + x[2] ** 2 + 0.5 * x[3] ** 2 - x[0] * x[2]
      + x[2] * x[3] - x[0] - 3.0 * x[1] + x[2] - x[3], (0.5,) * 4, -4.681818181, None,
      ineq=lambda x: _v(5.0 - x[0] - 2.0 * x[1] - x[2] - x[3], 4.0 - 3.0 * x[0] - x[1] - 2.0 * x[2] + x[3],
                        x[1] + 4.0 * x[2] - 1.5),
      lower=(0.0,) * 4, upper=(INF,) * 4),
    P("hs100", _f100, (1.0, 2.0, 0.0, 4.0, 0.0, 1.0, 1.0), 680.6300573, None, ineq=_in100),
    # badly scaled: bounds up to 4e5, constraints of 1e-2 and (hs106) 1e6
    P("hs072", lambda x: 1.0 + jnp.sum(x), (1.0,) * 4, 727.67937, (193.4071, 179.5475, 185.0186, 168.7062),
      ineq=lambda x: _v(0.0401 - 4.0 / x[0] - 2.25 / x[1] - 1.0 / x[2] - 0.25 / x[3],
                        0.010085 - 0.16 / x[0] - 0.36 / x[1] - 0.64 / x[2] - 0.64 / x[3]),
      lower=(0.001,) * 4, upper=(4e5, 3e5, 2e5, 1e5), feasible_start=False),
    P("hs083", lambda x: 5.3578547 * x[2] ** 2 + 0.8356891 * x[0] * x[4] + 37.293239 * x[0] - 40792.141,
      (78.0, 33.0, 27.0, 27.0, 27.0), -30665.53867, (78.0, 33.0, 29.99526, 45.0, 36.77581), ineq=_abc83,
      lower=(78.0, 33.0, 27.0, 27.0, 27.0), upper=(102.0, 45.0, 45.0, 45.0, 45.0), feasible_start=False),
    # f*: the book prints 7049.330923 (1.2e-5 above the minimiser); 7049.2480205 is the
    # value at the minimiser (579.3067, 1359.9707, 5109.9707, 182.0177, 295.6012,
    # 217.9823, 286.4165, 395.6012), which SLSQP reaches
    P("hs106", lambda x: x[0] + x[1] + x[2], (5000.0, 5000.0, 5000.0, 200.0, 350.0, 150.0, 225.0, 425.0),
      7049.2480205, None, ineq=_in106, lower=(100.0, 1000.0, 1000.0) + (10.0,) * 5,
      upper=(10000.0,) * 3 + (1000.0,) * 5, feasible_start=False),
    # --- equalities and inequalities ------------------------------------------------
    P("hs014", lambda x: (x[0] - 2.0) ** 2 + (x[1] - 1.0) ** 2, (2.0, 2.0), 9.0 - 2.875 * math.sqrt(7.0),
      (0.5 * (math.sqrt(7.0) - 1.0), 0.25 * (math.sqrt(7.0) + 1.0)),
      eq=lambda x: _v(x[0] - 2.0 * x[1] + 1.0), ineq=lambda x: _v(-0.25 * x[0] ** 2 - x[1] ** 2 + 1.0),
      feasible_start=False),
    P("hs032", lambda x: (x[0] + 3.0 * x[1] + x[2]) ** 2 + 4.0 * (x[0] - x[1]) ** 2, (0.1, 0.7, 0.2), 1.0,
      (0.0, 0.0, 1.0), eq=lambda x: _v(1.0 - jnp.sum(x)),
      ineq=lambda x: _v(6.0 * x[1] + 4.0 * x[2] - x[0] ** 3 - 3.0),
      lower=(0.0, 0.0, 0.0), upper=(INF, INF, INF)),
    P("hs041", lambda x: 2.0 - x[0] * x[1] * x[2], (2.0,) * 4, 52.0 / 27.0, (2.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0, 2.0),
      eq=lambda x: _v(x[0] + 2.0 * x[1] + 2.0 * x[2] - x[3]),
      lower=(0.0,) * 4, upper=(1.0, 1.0, 1.0, 2.0), feasible_start=False),
    P("hs071", lambda x: x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2], (1.0, 5.0, 5.0, 1.0), 17.0140173, None,
      eq=lambda x: _v(jnp.sum(x**2) - 40.0), ineq=lambda x: _v(jnp.prod(x) - 25.0),
      lower=(1.0,) * 4, upper=(5.0,) * 4, feasible_start=False),
]


class ProblemGroup:
    """Problems with the same `n` behind one objective `fn(x, k)` (and `eq(x, k)`,
    `ineq(x, k)`), `k` selecting the problem by `lax.switch`: one compilation serves
    the whole group. Constraints are padded to a common count with rows that are
    always satisfied and have zero gradient (`0 = 0`, `1 >= 0`); bounds are arrays
    (`+-inf` where free), so every member has the same structure. (One group for all
    dimensions, the smaller problems padded with fixed variables, compiles twice as
    long as a group per dimension: measured 108 s of CPU against 56.)"""

    def __init__(self, problems):
        import jax
        from jax import lax

        self.problems = list(problems)
        self.n = self.problems[0].n
        spec = jax.ShapeDtypeStruct((self.n,), jnp.float64)
        count = lambda c: 0 if c is None else jax.eval_shape(c, spec).shape[0]
        self.me = max(count(p.eq) for p in self.problems)
        self.mi = max(count(p.ineq) for p in self.problems)

        def padded(c, m, fill):
            def f(x):
                vals = jnp.zeros(0, x.dtype) if c is None else c(x).astype(x.dtype)
                return jnp.concatenate([vals, jnp.full(m - vals.shape[0], fill, x.dtype)])
            return f

        fns = [p.fn for p in self.problems]
        eqs = [padded(p.eq, self.me, 0.0) for p in self.problems]
        ineqs = [padded(p.ineq, self.mi, 1.0) for p in self.problems]
        self.fn = lambda x, k: lax.switch(k, fns, x)
        self.eq = (lambda x, k: lax.switch(k, eqs, x)) if self.me else None
        self.ineq = (lambda x, k: lax.switch(k, ineqs, x)) if self.mi else None
        # for SciPy: compiled once per group and dtype
        self._jitted = {"fg": jax.jit(jax.value_and_grad(self.fn))}
        for name, c in (("eq", self.eq), ("ineq", self.ineq)):
            if c is not None:
                self._jitted[name], self._jitted["J" + name] = jax.jit(c), jax.jit(jax.jacfwd(c))

    def bounds(self, problem, dtype=jnp.float64):
        b = problem.bounds or ((-INF,) * self.n, (INF,) * self.n)
        return jnp.asarray(b[0], dtype), jnp.asarray(b[1], dtype)

    def slsqp(self, k, problem, dtype, **options):
        """SciPy SLSQP on `problem` (the `k`-th) from its start, clipped to its bounds
        as `minimize` does, through the group's jitted functions in `dtype`."""
        import warnings

        import numpy as np
        import scipy.optimize

        kk, fns = jnp.int32(k), self._jitted
        me = 0 if problem.eq is None else int(problem.eq(jnp.zeros(self.n)).shape[0])
        mi = 0 if problem.ineq is None else int(problem.ineq(jnp.zeros(self.n)).shape[0])
        as_dtype = lambda x: jnp.asarray(np.asarray(x), dtype)
        cons = [{"type": kind, "fun": lambda x, kind=kind, m=m: np.asarray(fns[kind](as_dtype(x), kk), float)[:m],
                 "jac": lambda x, kind=kind, m=m: np.asarray(fns["J" + kind](as_dtype(x), kk), float)[:m]}
                for kind, m in (("eq", me), ("ineq", mi)) if m]
        bounds = None
        if problem.bounds is not None:
            bounds = [(None if math.isinf(lo) else lo, None if math.isinf(up) else up)
                      for lo, up in zip(*problem.bounds)]

        def fun(x):
            f, g = fns["fg"](as_dtype(x), kk)
            return float(f), np.asarray(g, float)

        x0 = np.asarray(problem.x0, float)
        if bounds is not None:
            x0 = np.clip(x0, *(np.asarray(b, float) for b in problem.bounds))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return scipy.optimize.minimize(fun, x0, jac=True, method="SLSQP", bounds=bounds, constraints=cons,
                                           options=options)


def groups(problems) -> list[ProblemGroup]:
    """`problems` grouped by dimension, in order of first appearance."""
    by_n: dict[int, list] = {}
    for p in problems:
        by_n.setdefault(p.n, []).append(p)
    return [ProblemGroup(ps) for ps in by_n.values()]
