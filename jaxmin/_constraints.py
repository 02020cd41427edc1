"""`Constraints`: the bounds and constraint functions of a problem, on the flat `x`.

`minimize` builds one from its `eq=`, `ineq=` and `bounds=` arguments (pytrees are
ravelled like `x0`) and hands it to the solvers that take them.
"""

from typing import Callable, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._typing import Vector

ConstraintFn = Callable[..., jax.Array]
"""`c(x, *args)` returning a 1-D array (`eq`: must be 0; `ineq`: must be >= 0)."""


class Constraints(eqx.Module):
    """Constraints on a flat `x`; any part may be `None` (absent).

    - `eq(x, *args)`: a 1-D array that must be 0.
    - `ineq(x, *args)`: a 1-D array that must be >= 0 (SciPy's SLSQP convention).
    - `lower`, `upper`: bounds shaped like `x` (`-inf`/`inf` where a side is free);
      both or neither are present.

    Users of `jm.minimize` never build one: its `eq=`, `ineq=` and `bounds=` keywords
    do. It is for driving a solver by hand and for solver authors: a solver that
    takes constraints receives one as the last argument of `init` and `step`; build
    it directly on the flat `x`.

    **Example:**

    ```python
    box = jm.Constraints(lower=jnp.zeros(3), upper=jnp.ones(3))
    x = box.project(jnp.array([-0.5, 0.5, 2.0]))   # [0.0, 0.5, 1.0]
    # then: state = solver.init(fn, x, args, box); x, state = solver.step(fn, x, state, args, box)
    ```
    """

    eq: Optional[ConstraintFn] = None
    ineq: Optional[ConstraintFn] = None
    lower: Optional[Vector] = None
    upper: Optional[Vector] = None

    @property
    def has_bounds(self) -> bool:
        return self.lower is not None

    def project(self, x: Vector) -> Vector:
        """`x` clipped into the bounds (`x` itself without bounds)."""
        if not self.has_bounds:
            return x
        return jnp.clip(x, self.lower, self.upper)


def _bound_leaves(bound, x0, name: str):
    """One side of `bounds=` as a list of arrays shaped like x0's leaves."""
    x_leaves, x_def = jax.tree.flatten(x0)
    if bound is None:
        bound = -np.inf if name == "lower" else np.inf
    if isinstance(bound, (int, float)) or getattr(bound, "shape", None) == ():
        leaves = [bound] * len(x_leaves)
    else:
        b_leaves, b_def = jax.tree.flatten(bound)
        if b_def != x_def:
            raise ValueError(
                f"`bounds` {name} must be a scalar or a pytree shaped like `x0`; its structure "
                f"{b_def} does not match x0's {x_def}."
            )
        leaves = b_leaves
    out = []
    for b, x in zip(leaves, x_leaves):
        dtype = getattr(b, "dtype", None)
        if dtype is not None and not (
            jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)
        ):
            raise ValueError(f"`bounds` {name} must be real numbers; got dtype {dtype}.")
        if jnp.ndim(b) != 0 and jnp.shape(b) != jnp.shape(x):
            raise ValueError(
                f"`bounds` {name} has a leaf of shape {jnp.shape(b)} where x0's leaf has shape "
                f"{jnp.shape(x)}; give a scalar or an array of x0's shape."
            )
        out.append(b)
    return out


def check_bounds(bounds, x0) -> tuple[list, list]:
    """`(lower_leaves, upper_leaves)` from `bounds=(lower, upper)`, validated against x0.

    Raises `ValueError` for a malformed pair, shapes that do not match x0, or (for
    concrete values) a lower bound above its upper bound.
    """
    if not (isinstance(bounds, (tuple, list)) and len(bounds) == 2):
        raise ValueError(f"`bounds` must be a pair `(lower, upper)`; got {bounds!r}.")
    lower = _bound_leaves(bounds[0], x0, "lower")
    upper = _bound_leaves(bounds[1], x0, "upper")
    for lo, up in zip(lower, upper):
        if isinstance(lo, jax.core.Tracer) or isinstance(up, jax.core.Tracer):
            continue
        if np.any(np.asarray(lo, dtype=np.float64) > np.asarray(up, dtype=np.float64)):
            raise ValueError("`bounds`: some lower bound is above its upper bound.")
    return lower, upper


def flat_bounds(lower_leaves, upper_leaves, x0, ravel) -> tuple[Vector, Vector]:
    """The bound leaves broadcast to x0's leaves, in x0's dtypes, and flattened by
    `ravel` (x0's own layout, so each bound lines up with its entry of the flat x)."""
    treedef = jax.tree.structure(x0)

    def flat(leaves):
        parts = [
            jnp.broadcast_to(jnp.asarray(b, dtype=x.dtype), jnp.shape(x))
            for b, x in zip(leaves, jax.tree.leaves(x0))
        ]
        return ravel(jax.tree.unflatten(treedef, parts))

    return flat(lower_leaves), flat(upper_leaves)


def flat_constraint(c: Optional[ConstraintFn], unravel, x_flat: Vector, args: tuple, name: str):
    """`c` as a function of the flat `x` returning a 1-D array in x's dtype, after
    checking (by tracing once, no evaluation) that it returns a real array."""
    if c is None:
        return None
    if not callable(c):
        raise TypeError(f"`{name}` must be a function `{name}(x, *args)`; got {c!r}.")

    def flat(x, *args):
        return jnp.ravel(c(unravel(x), *args)).astype(x.dtype)

    out = jax.eval_shape(lambda x, *a: c(unravel(x), *a), x_flat, *args)
    if not (isinstance(out, jax.ShapeDtypeStruct) and jnp.issubdtype(out.dtype, jnp.floating)):
        raise ValueError(f"`{name}` must return a floating-point array; got {out}.")
    return flat
