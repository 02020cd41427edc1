"""jaxmin on JAX's SPMD partitioner, 8 simulated CPU devices (run by test_sharding.py).

Two ways to scale out, neither with any distribution code in jaxmin:

- a batch of problems sharded along the batch axis (`jax.vmap(minimize)`): each device
  solves its own members; the only communication is the scalar "every member done"
  test of each while loop;
- one problem whose `x` is sharded: the iterates, the gradient and the L-BFGS history
  stay sharded, and dot products and norms become scalar all-reduces.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hlo import collectives
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxmin as jm

if jax.device_count() < 8:  # pragma: no cover - the runner sets the flag
    pytest.skip("needs XLA_FLAGS=--xla_force_host_platform_device_count=8", allow_module_level=True)

MESH = jax.make_mesh((8,), ("d",), axis_types=(AxisType.Auto,))
SHARDED = NamedSharding(MESH, P("d"))
ONE_DEVICE = jax.sharding.SingleDeviceSharding(jax.devices()[0])


def _rosenbrock(x, a):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (a - x[:-1]) ** 2)


def _separable(x, d, c):
    # convex, minimiser c, f* = 0 (so f's rounding does not limit gtol)
    r = x - c
    return 0.5 * jnp.sum(d * r**2) + 0.25 * jnp.sum(r**4)


def _separable_tree(x, d, c):
    return _separable(x["u"], d, c) + _separable(x["v"], d, 2.0 * c)


def _spec(a):
    return a.sharding.spec if isinstance(a.sharding, NamedSharding) else None


def _compiled_collectives(f, *args):
    return collectives(f.lower(*args).compile().as_text())


# ------------------------------------------------------------------ batched solves
B = 64  # 8 members per device
_BATCH_SOLVERS = {"LBFGS": jm.LBFGS(gtol=1e-8), "NewtonCG": jm.NewtonCG(gtol=1e-8)}


def _batch():
    rng = np.random.default_rng(0)
    x0 = np.array([-1.2, 1.0]) + 0.1 * rng.standard_normal((B, 2))
    return jnp.asarray(x0), jnp.asarray(rng.uniform(0.5, 1.5, B))


@pytest.mark.parametrize("name", list(_BATCH_SOLVERS))
def test_vmap_over_a_sharded_batch(name):
    solver = _BATCH_SOLVERS[name]
    x0, a = _batch()
    x0_s, a_s = jax.device_put((x0, a), SHARDED)
    solve = jax.jit(jax.vmap(lambda x0, a: jm.minimize(_rosenbrock, x0, solver, args=(a,))))
    sol = solve(x0_s, a_s)
    # the result stays sharded along the batch axis, like its inputs
    assert _spec(sol.x) == P("d") and _spec(sol.num_steps) == P("d")
    assert bool(jnp.all(sol.success))
    # sharding changes nothing: bitwise the same batch solved on one device
    sol_1 = solve(*jax.device_put((x0, a), ONE_DEVICE))
    for leaf, leaf_1 in zip(jax.tree.leaves(sol), jax.tree.leaves(sol_1)):
        np.testing.assert_array_equal(np.asarray(leaf), np.asarray(leaf_1))
    # every member takes its own unbatched solve's steps and evaluations, and lands on
    # its x to a few ulps: XLA's CPU backend fuses the batched program differently and
    # may contract a different set of multiply-adds into FMAs (measured: 6 of 64
    # L-BFGS members differ in the last bits, with or without sharding). The unbatched
    # solve is jitted too, compiled as the batch is (a direct call of this tiny problem
    # compiles without LLVM's optimisations: `_compiled.TINY_PROBLEM`)
    one = jax.jit(lambda x0, a: jm.minimize(_rosenbrock, x0, solver, args=(a,)))
    for i in range(0, B, 7):
        single = one(x0[i], a[i])
        np.testing.assert_allclose(np.asarray(sol.x[i]), np.asarray(single.x), rtol=1e-14, atol=0)
        assert int(sol.num_steps[i]) == int(single.num_steps)
        assert int(sol.num_fun_evals[i]) == int(single.num_fun_evals)

    # communication: only each while loop's scalar "any member still running" test
    found = _compiled_collectives(solve, x0_s, a_s)
    assert found, "expected the loops' termination tests to be all-reduces"
    for c in found:
        assert c.op == "all-reduce" and c.shape.startswith("pred[]") and c.in_condition, c
    # the outer loop's test is one of them
    assert any(c.path == ("while-condition",) for c in found)


def test_vmap_over_a_sharded_pytree_batch():
    x0, a = _batch()
    tree = {"p": x0[:, :1], "q": x0[:, 1:]}
    fn = lambda t, a: _rosenbrock(jnp.concatenate([t["p"], t["q"]]), a)
    solver = _BATCH_SOLVERS["LBFGS"]
    solve = jax.jit(jax.vmap(lambda t, a: jm.minimize(fn, t, solver, args=(a,)).x))
    tree_s, a_s = jax.device_put((tree, a), SHARDED)
    x = solve(tree_s, a_s)
    assert _spec(x["p"]) == P("d") and _spec(x["q"]) == P("d")
    x_1 = solve(*jax.device_put((tree, a), ONE_DEVICE))
    np.testing.assert_array_equal(np.asarray(x["p"]), np.asarray(x_1["p"]))
    for c in _compiled_collectives(solve, tree_s, a_s):
        assert c.op == "all-reduce" and c.shape.startswith("pred[]") and c.in_condition, c


# ------------------------------------------------------------ one sharded problem
N = 8 * 512
_LARGE_SOLVERS = {"LBFGS": jm.LBFGS(gtol=1e-9), "NewtonCG": jm.NewtonCG(gtol=1e-9)}


def _data():
    rng = np.random.default_rng(1)
    return jnp.asarray(rng.uniform(1.0, 10.0, N)), jnp.asarray(rng.standard_normal(N))


def _check_communication(found, members_per_device=0):
    # dot products and norms: all-reduces of scalars (or tuples of scalars; one per
    # member of a batch); nothing x-sized is ever gathered or moved
    assert found
    for c in found:
        assert c.op == "all-reduce" and c.size <= max(members_per_device, 1), c


@pytest.mark.parametrize("name", list(_LARGE_SOLVERS))
def test_one_sharded_problem(name):
    solver = _LARGE_SOLVERS[name]
    d, c = _data()
    x0 = jnp.zeros(N)
    solve = jax.jit(lambda x0, d, c: jm.minimize(_separable, x0, solver, args=(d, c)))
    args_s = jax.device_put((x0, d, c), SHARDED)
    sol = solve(*args_s)
    ref = solve(*jax.device_put((x0, d, c), ONE_DEVICE))
    assert bool(sol.success) and bool(ref.success)
    # iterates, gradient and (L-BFGS) curvature history stay sharded
    assert _spec(sol.x) == P("d") and _spec(sol.grad) == P("d")
    if name == "LBFGS":
        assert _spec(sol.state.s_hist) == P(None, "d") and _spec(sol.state.y_hist) == P(None, "d")
    # the same solve as on one device, to rounding (sums are split across devices)
    np.testing.assert_allclose(sol.x, ref.x, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sol.x, c, rtol=1e-8, atol=1e-9)
    assert abs(int(sol.num_steps) - int(ref.num_steps)) <= 2
    _check_communication(_compiled_collectives(solve, *args_s))


def test_one_sharded_pytree_problem():
    # several sharded leaves ravel block by block, so no leaf moves across devices
    d, c = _data()
    x0 = {"u": jnp.zeros(N), "v": jnp.zeros(N)}
    solver = _LARGE_SOLVERS["LBFGS"]
    solve = jax.jit(lambda x0, d, c: jm.minimize(_separable_tree, x0, solver, args=(d, c)))
    args_s = jax.device_put((x0, d, c), SHARDED)
    sol = solve(*args_s)
    ref = solve(*jax.device_put((x0, d, c), ONE_DEVICE))
    assert bool(sol.success) and bool(ref.success)
    assert _spec(sol.x["u"]) == P("d") and _spec(sol.x["v"]) == P("d")
    assert _spec(sol.state.s_hist) == P(None, "d")
    np.testing.assert_allclose(sol.x["u"], ref.x["u"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sol.x["v"], 2.0 * c, rtol=1e-8, atol=1e-9)
    _check_communication(_compiled_collectives(solve, *args_s))
    # called outside jit, on the sharded arrays directly: the same
    direct = jm.minimize(_separable_tree, *args_s[:1], solver, args=args_s[1:])
    assert _spec(direct.x["v"]) == P("d")
    np.testing.assert_array_equal(np.asarray(direct.x["v"]), np.asarray(sol.x["v"]))


def test_batch_of_sharded_problems_on_a_2d_mesh():
    # members along one mesh axis, each member's x along the other
    mesh = jax.make_mesh((2, 4), ("b", "x"), axis_types=(AxisType.Auto, AxisType.Auto))
    d, c = _data()
    cs = jnp.stack([c, -c])
    solver = _LARGE_SOLVERS["LBFGS"]
    solve = jax.jit(jax.vmap(lambda x0, c: jm.minimize(_separable, x0, solver, args=(d, c)).x))
    x0s = jnp.zeros((2, N))
    spec = NamedSharding(mesh, P("b", "x"))
    x0_s, cs_s = jax.device_put((x0s, cs), spec)
    x = solve(x0_s, cs_s)
    assert _spec(x) == P("b", "x")
    np.testing.assert_allclose(x, cs, rtol=1e-8, atol=1e-9)
    _check_communication(_compiled_collectives(solve, x0_s, cs_s), members_per_device=1)


def test_explicit_mesh_through_auto_axes():
    # `jax.make_mesh` makes Explicit axes by default; jaxmin's reductions over a
    # sharded x need Auto axes (sharding propagation), which `auto_axes` provides
    from jax.sharding import auto_axes

    mesh = jax.make_mesh((8,), ("d",), axis_types=(AxisType.Explicit,))
    d, c = _data()
    solver = _LARGE_SOLVERS["LBFGS"]
    with jax.set_mesh(mesh):
        args = jax.device_put((jnp.zeros(N), d, c), P("d"))
        one = lambda x0, d, c: jm.minimize(_separable, x0, solver, args=(d, c)).x
        x = jax.jit(auto_axes(one, out_sharding=P("d")))(*args)
        x0s, cs = jax.device_put((jnp.zeros((B, 4)), jnp.ones((B, 4))), P("d"))
        many = jax.vmap(lambda x0, c: jm.minimize(_separable, x0, solver, args=(1.0, c)).x)
        xb = jax.jit(auto_axes(many, out_sharding=P("d")))(x0s, cs)
    assert _spec(x) == P("d") and _spec(xb)[0] == "d"
    np.testing.assert_allclose(x, c, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(xb, cs, rtol=1e-8, atol=1e-9)
