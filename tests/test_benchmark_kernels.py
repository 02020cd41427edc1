"""`benchmarks.kernels.loop_tree` reads a compiled program's loops and counts what each
runs per trip: checked on a program whose structure is known by construction."""

import jax
import jax.numpy as jnp
from jax import lax

from benchmarks.kernels import loop_tree


def test_loop_tree_finds_each_loop_and_branch_with_its_kernels():
    def program(x):
        def body(carry):
            i, v = carry
            # a reduction and a sort: kernels XLA cannot fuse into one
            v = lax.cond(jnp.sum(v) > 0, lambda u: jnp.sort(u) * 2.0, lambda u: u - 1.0, v)
            return i + 1, v

        return lax.while_loop(lambda c: c[0] < 3, body, (0, x))[1]

    x = jnp.arange(5.0)
    tree = loop_tree(jax.jit(program).lower(x).compile().as_text())
    assert tree[0].startswith("entry: ")
    roles = [line.strip().split(":")[0] for line in tree]
    assert roles.count("condition") == 1 and roles.count("body") == 1 and roles.count("branch") == 2
    body = next(line for line in tree if line.strip().startswith("body:"))
    count = int(body.split(":")[1].split("(")[0])
    assert count >= 2 and "conditional" in body
    # the count is the sum of the kinds listed
    kinds = body.split("(", 1)[1].rstrip(")").split(", ")
    assert count == sum(int(k.split()[0]) for k in kinds)
    assert any("sort" in line for line in tree)
