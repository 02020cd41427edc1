"""`Flattener`: one pytree layout for `x0` and everything shaped like it (bounds).

Solvers work on a flat 1-D `x`. `minimize` ravels `x0` and unravels every iterate it
hands to `fn`; bounds, and any other pytree shaped like `x0`, are ravelled by the same
`Flattener`, so they line up with `x` entry by entry.
"""

import math
from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PyTree

from ._typing import Vector


def _blocks(x0) -> int:
    """The greatest common divisor of the leading dimensions of `x0`'s leaves, when it
    has several leaves, all of one dtype and none 0-d; else 1."""
    leaves = jax.tree.leaves(x0)
    if len(leaves) < 2 or len({x.dtype for x in leaves}) > 1 or min(x.ndim for x in leaves) == 0:
        return 1
    return math.gcd(*(x.shape[0] for x in leaves)) or 1


class Flattener(eqx.Module):
    """Ravels pytrees shaped like `x0` into one flat vector and back (hashable by value:
    equal for equal layouts).

    With several leaves of one dtype, the flat vector is in *block order*: every leaf is
    cut into `blocks` equal blocks along its first axis (`blocks` the gcd of their
    leading dimensions), and the vector is block 0 of every leaf, then block 1, ...
    Leaves sharded along their first axis (`P("x")`, any number of devices dividing
    `blocks`) so ravel with their shards in place: device `i`'s part of the flat vector
    is made of device `i`'s parts of the leaves, where `ravel_pytree`'s plain
    concatenation would move every leaf across devices at every evaluation of `fn`.
    Otherwise (one leaf, mixed dtypes, a 0-d leaf) the order is `ravel_pytree`'s: the
    leaves ravelled one after another, in the common dtype.
    """

    treedef: Any = eqx.field(static=True)
    shapes: tuple = eqx.field(static=True)
    dtypes: tuple = eqx.field(static=True)
    blocks: int = eqx.field(static=True)

    def __init__(self, x0: PyTree):
        leaves, self.treedef = jax.tree.flatten(x0)
        self.shapes = tuple(tuple(jnp.shape(x)) for x in leaves)
        self.dtypes = tuple(jnp.result_type(x) for x in leaves)
        self.blocks = _blocks(x0)

    def ravel(self, tree: PyTree) -> Vector:
        """`tree` (shaped like `x0`) as a flat vector in `x0`'s layout and common dtype."""
        dtype = np.result_type(*self.dtypes)  # as ravel_pytree: the common dtype
        leaves = [jnp.asarray(x, dtype) for x in self.treedef.flatten_up_to(tree)]
        if len(leaves) == 1:
            return leaves[0].ravel()
        return jnp.concatenate([x.reshape(self.blocks, -1) for x in leaves], axis=1).reshape(-1)

    def unravel(self, flat: Vector) -> PyTree:
        """The inverse of `ravel` (leaves in `x0`'s shapes and dtypes)."""
        widths = np.cumsum([math.prod(s) // self.blocks for s in self.shapes])[:-1].tolist()
        parts = jnp.split(flat.reshape(self.blocks, -1), widths, axis=1)
        leaves = [p.reshape(s).astype(d) for p, s, d in zip(parts, self.shapes, self.dtypes)]
        return jax.tree.unflatten(self.treedef, leaves)


def flattener(x0: PyTree) -> tuple[Vector, Callable, Callable]:
    """`(x_flat, ravel, unravel)` for `x0` (see `Flattener`)."""
    f = Flattener(x0)
    return f.ravel(x0), f.ravel, f.unravel
