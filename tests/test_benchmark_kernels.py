"""`benchmarks.kernels.loop_tree` reads a compiled program's loops and counts what each
runs per trip: checked on a program whose structure is known by construction."""

import jax
import jax.numpy as jnp
from jax import lax

from benchmarks.kernels import buffer_bytes, loop_tree


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
    kinds = body.split("(", 1)[1].split(")")[0].split(", ")
    assert count == sum(int(k.split()[0]) for k in kinds)
    assert any("sort" in line for line in tree)


def _body_line(size: int) -> str:
    """The loop body's line for a loop of many kernels on a small vector that also
    carries a `size x size` float64 matrix (touched in a nested branch)."""

    def program(v, m):
        def body(carry):
            i, v, m = carry
            for _ in range(6):
                v = jnp.sort(v)[::-1] * 0.5  # a sort is a kernel of its own
            m = lax.cond(v[0] > 0, lambda: m * 0.5, lambda: m)
            return i + 1, v, m

        return lax.while_loop(lambda c: c[0] < 3, body, (0, v, m))

    text = jax.jit(program).lower(jnp.arange(5.0), jnp.ones((size, size), jnp.float64)).compile().as_text()
    return next(line for line in loop_tree(text) if line.strip().startswith("body:"))


def test_loop_tree_gives_the_largest_buffer_and_the_execution_mode():
    at, above = _body_line(8), _body_line(9)  # 8 * 8 * 8 = 512 bytes, 9 * 9 * 8 = 648
    assert "[in order, buffers up to 512 B]" in at
    assert "[graph, buffers up to 648 B]" in above
    assert buffer_bytes("f32[3,4]{1,0}") == 48 and buffer_bytes("pred[]") == 1
    assert buffer_bytes("(f64[], s32[])") == 0


def test_loop_times_counts_each_loops_trips_and_time():
    """`benchmarks.loop_times` on a loop of 3 trips (each a sort and a sum, kernels of
    their own, on more data than XLA compiles into one function), called 4 times."""
    from benchmarks.loop_times import loop_times, thunk_events

    def program(v):
        def body(carry):
            i, v = carry
            return i + 1, jnp.sort(v) * 0.5 + jnp.sum(v)

        return lax.while_loop(lambda c: c[0] < 3, body, (0, v))[1]

    x = jnp.linspace(-1.0, 1.0, 512)
    compiled = jax.jit(program).lower(x).compile()
    micros, calls = thunk_events(compiled, x, repeats=4)
    lines = loop_times(compiled.as_text(), micros, calls, repeats=4)
    roles = {line.strip().split(":")[0]: line for line in lines}
    assert set(roles) == {"entry", "condition", "body"}, lines
    # (XLA runs no condition for a loop whose trip count it knows)
    assert roles["entry"].strip().startswith("entry: 1 trips") and " 3 trips" in roles["body"], lines
    spent = float(roles["body"].split("trips, ")[1].split(" µs")[0])
    assert spent > 0 and "dropped" not in "".join(lines)
