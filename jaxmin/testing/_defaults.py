"""Tolerances and finite-difference steps derived from a dtype.

Every default of `jm.testing` comes from the machine epsilon `eps` of the checked
point's dtype (2.2e-16 in float64, 1.2e-7 in float32):

| quantity | default | float64 | float32 |
|---|---|---|---|
| `rtol` of `check_optimality` | `eps^(1/2)` | 1.5e-8 | 3.5e-4 |
| finite-difference step (relative) | `eps^(1/3)` | 6.1e-6 | 4.9e-3 |
| finite-difference `rtol` | `eps^(1/4)` | 1.2e-4 | 1.9e-2 |

`eps^(1/2)`: a point is optimal to about half its digits, the accuracy to which f pins
down x near a minimiser (Gill, Murray & Wright, *Practical Optimization* §8.2.2).
`eps^(1/3)`: the step balancing the central difference's truncation error `O(h^2)`
against its rounding error `O(eps / h)` (Nocedal & Wright, *Numerical Optimization*,
2nd ed., §8.1, eq. 8.9), whose total error is then `O(eps^(2/3))`; the comparisons
allow `eps^(1/4)` on top of the estimated error, a safety margin of `eps^(-5/12)`.
"""

import jax.numpy as jnp
import numpy as np


def machine_eps(dtype) -> float:
    return float(jnp.finfo(dtype).eps)


def default_rtol(dtype) -> float:
    """`eps^(1/2)`: the tolerance of `check_optimality`'s conditions."""
    return float(np.sqrt(machine_eps(dtype)))


def fd_step(dtype) -> float:
    """`eps^(1/3)`: the central-difference step, relative to `max(1, |x|_inf)`."""
    return float(np.cbrt(machine_eps(dtype)))


def fd_rtol(dtype) -> float:
    """`eps^(1/4)`: the relative part of a finite-difference comparison."""
    return float(machine_eps(dtype) ** 0.25)
