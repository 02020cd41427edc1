"""A bounded problem over a sharded pytree keeps its block layout: `x0` and the bounds
are ravelled by one `Flattener`, so every leaf (and its bounds) stays on its devices and
the bounds line up with their entries (8 simulated CPU devices, run by
test_sharding.py)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxmin as jm

MESH = jax.make_mesh((8,), ("d",), axis_types=(AxisType.Auto,))
SHARDED = NamedSharding(MESH, P("d"))
ONE_DEVICE = jax.sharding.SingleDeviceSharding(jax.devices()[0])
N = 8 * 64


def _tree_quadratic(x, c):
    return 0.5 * jnp.sum((x["u"] - c) ** 2) + 0.5 * jnp.sum((x["v"] + c) ** 2)


_SOLVE = jax.jit(lambda x0, lo, up, c: jm.minimize(_tree_quadratic, x0, jm.LBFGS(), args=(c,),
                                                   bounds=(lo, up)))


def _problem():
    c = jnp.asarray(np.random.default_rng(2).uniform(-2.0, 2.0, N))
    x0 = {"u": jnp.zeros(N), "v": jnp.zeros(N)}
    # different bounds per leaf: a layout mix-up would clip the wrong entries
    lower = {"u": jnp.full(N, -1.0), "v": jnp.full(N, -0.5)}
    upper = {"u": jnp.full(N, 0.5), "v": jnp.full(N, 1.0)}
    return x0, lower, upper, c


@functools.cache
def _compiled_sharded():
    """The sharded solve, compiled once for both tests (run by one, read by the other)."""
    return _SOLVE.lower(*jax.device_put(_problem(), SHARDED)).compile()


def test_bounded_sharded_pytree_matches_the_clipped_closed_form():
    problem = _problem()
    c = problem[3]
    sol = _compiled_sharded()(*jax.device_put(problem, SHARDED))
    ref = _SOLVE(*jax.device_put(problem, ONE_DEVICE))
    assert bool(sol.success) and bool(ref.success)
    assert sol.x["u"].sharding.spec == P("d") and sol.x["v"].sharding.spec == P("d")
    # the minimiser of a separable quadratic over a box is the clipped unconstrained one
    np.testing.assert_allclose(sol.x["u"], np.clip(c, -1.0, 0.5), atol=1e-10)
    np.testing.assert_allclose(sol.x["v"], np.clip(-c, -0.5, 1.0), atol=1e-10)
    np.testing.assert_allclose(sol.x["u"], ref.x["u"], atol=1e-12)


def test_bounded_sharded_solve_gathers_nothing_x_sized_on_its_common_path():
    """The compiled L-BFGS-B loop over a sharded x communicates only reductions of
    scalars and of `2m`-sized vectors (dot products, `W^T v`, the Cauchy scan's reads
    of one coordinate), never an x-sized array, outside the Cauchy search's fallback.
    That fallback (`lax.cond`; it runs when the Cauchy point lies beyond
    `SCAN_BREAKPOINTS` breakpoints, mostly in the first steps) sorts the breakpoints:
    its one all-gather is of their integer sort keys."""
    from hlo import collectives

    found = [f for f in collectives(_compiled_sharded().as_text()) if f.in_loop]
    common = [f for f in found if "conditional" not in f.path]
    two_m = 2 * jm.LBFGS().history_size  # the compact model's W has 2m columns
    assert common and two_m**2 < N  # (2m x 2m reductions are not x-sized)
    for f in common:
        assert f.op == "all-reduce" and f.size <= two_m**2, f
    gathers = [f for f in found if f.op == "all-gather"]
    assert all(f.shape.startswith("s") for f in gathers), gathers  # integer sort keys only
