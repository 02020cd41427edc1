"""Numeric hyperparameters of every solver, line search and linear solver as traced
arrays: new values compile nothing, `vmap` over them equals the per-value solves,
and schedules (callables, optax's, `eqx.Module`s with array fields) work."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmin as jm
from helpers import TraceCounter

A = jnp.array([[3.0, 0.5, 0.0], [0.5, 2.0, 0.3], [0.0, 0.3, 1.0]])
B = jnp.array([1.0, -1.0, 0.5])
X0 = jnp.zeros(3)
X_STAR = jnp.linalg.solve(A, B)


def _quadratic(x, A, b):
    return 0.5 * x @ A @ x - b @ x


def _quartic(x, A, b):
    # convex but not quadratic, so Newton-CG and the line searches have work to do
    return _quadratic(x, A, b) + 0.1 * jnp.sum(x**4)


class _InverseDecay(eqx.Module):
    # a schedule whose parameter is an array: traced like any hyperparameter
    lr0: jax.Array

    def __call__(self, k):
        return self.lr0 / (1.0 + 0.01 * k.astype(self.lr0.dtype))


SL = jm.linesearch
# each factory builds a solver with every numeric hyperparameter scaled by an array v
FACTORIES = {
    "GradientDescent": lambda v: jm.GradientDescent(0.3 * v, gtol=1e-6 * v),
    "GradientDescent-schedule": lambda v: jm.GradientDescent(_InverseDecay(0.3 * v), gtol=1e-6 * v),
    "GradientDescent-HagerZhang": lambda v: jm.GradientDescent(
        v, linesearch=SL.HagerZhang(delta=0.1 * v, sigma=0.9 * v, epsilon=1e-6 * v, theta=0.5 * v,
                                    gamma=0.66 * v, rho=5.0 * v), gtol=1e-6 * v),
    "OptimisticGradient": lambda v: jm.OptimisticGradient(0.2 * v, 0.1 * v, gtol=1e-6 * v),
    "Fromage": lambda v: jm.Fromage(_InverseDecay(0.1 * v), gtol=1e-2 * v),
    "LBFGS-Zoom": lambda v: jm.LBFGS(linesearch=SL.Zoom(c1=1e-4 * v, c2=0.9 * v), gtol=1e-8 * v),
    "LBFGS-MoreThuente": lambda v: jm.LBFGS(
        linesearch=SL.MoreThuente(c1=1e-3 * v, c2=0.9 * v, xtol=0.1 * v), gtol=1e-8 * v),
    "LBFGS-Backtracking": lambda v: jm.LBFGS(
        linesearch=SL.Backtracking(c1=1e-4 * v, shrink=0.5 * v), gtol=1e-8 * v),
    "NewtonCG-TruncatedCG": lambda v: jm.NewtonCG(
        linear_solver=jm.linear.TruncatedCG(rtol=0.1 * v, negative_curvature_tol=1e-12 * v),
        linesearch=SL.Backtracking(c1=1e-4 * v, shrink=0.5 * v), gtol=1e-8 * v),
}


@pytest.mark.parametrize("name", FACTORIES)
def test_new_values_compile_nothing(name):
    make = FACTORIES[name]
    counted = TraceCounter(_quartic)
    first = jm.minimize(counted, X0, make(jnp.asarray(1.0)), args=(A, B), max_steps=300)
    traces = counted.count
    assert traces > 0
    second = jm.minimize(counted, X0, make(jnp.asarray(0.95)), args=(A, B), max_steps=300)
    assert counted.count == traces
    for sol in (first, second):
        assert sol.success, (name, sol.message)
        np.testing.assert_allclose(sol.grad, jax.grad(_quartic)(sol.x, A, B), rtol=1e-6, atol=1e-9)


def test_python_floats_and_one_schedule_object_compile_once():
    counted = TraceCounter(_quadratic)
    schedule = optax.exponential_decay(0.3, 100, 0.9)
    jm.minimize(counted, X0, jm.GradientDescent(0.3), args=(A, B))
    traces = counted.count
    jm.minimize(counted, X0, jm.GradientDescent(0.2, gtol=1e-7), args=(A, B))
    assert counted.count == traces
    # a schedule is structure: a new object compiles anew, the same object does not
    jm.minimize(counted, X0, jm.GradientDescent(schedule, gtol=1e-5), args=(A, B))
    once = counted.count
    jm.minimize(counted, X0, jm.GradientDescent(schedule, gtol=1e-6), args=(A, B))
    assert once > traces and counted.count == once


def test_cg_tolerances_traced_in_implicit_derivative():
    # CG's rtol/atol are traced inside the implicit-differentiation rule
    @jax.jit
    def dfun_db(b, rtol, atol):
        fn = lambda b: jm.minimize(_quadratic, X0, jm.LBFGS(gtol=1e-10), args=(A, b),
                                   implicit_solver=jm.linear.CG(rtol=rtol, atol=atol)).x
        return jax.jacrev(fn)(b)

    exact = jnp.linalg.inv(A)  # x* = A^-1 b
    np.testing.assert_allclose(dfun_db(B, jnp.asarray(1e-10), jnp.asarray(0.0)), exact, rtol=1e-7)
    np.testing.assert_allclose(dfun_db(B, jnp.asarray(1e-12), jnp.asarray(1e-14)), exact, rtol=1e-7)
    assert dfun_db._cache_size() == 1


# ----------------------------------------------------------------------------- vmap
def _check_vmap(make, values, max_steps=1000, fn=_quadratic):
    solve = lambda v: jm.minimize(fn, X0, make(v), args=(A, B), max_steps=max_steps)
    batched = jax.vmap(solve)(values)
    # each member against its own solve compiled as the batch is, in `jit` (a direct call
    # of this tiny problem compiles without LLVM's optimisations, `_compiled.TINY_PROBLEM`,
    # and over thousands of steps its last bits drift further)
    single_solve = jax.jit(solve)
    for i, v in enumerate(values):
        single = single_solve(v)
        assert int(batched.num_steps[i]) == int(single.num_steps)
        assert int(batched.status[i]) == int(single.status)
        np.testing.assert_allclose(batched.x[i], single.x, rtol=1e-12, atol=1e-14)
    return batched


def test_vmap_over_learning_rate():
    lrs = jnp.array([0.1, 0.2, 0.3])
    sol = _check_vmap(lambda lr: jm.GradientDescent(lr, gtol=1e-8), lrs)
    assert bool(jnp.all(sol.success))
    np.testing.assert_allclose(sol.x, jnp.broadcast_to(X_STAR, (3, 3)), atol=1e-7)
    steps = [int(n) for n in sol.num_steps]
    assert steps[0] > steps[1] > steps[2]  # a larger step converges sooner
    # the one-liner
    xs = jax.vmap(lambda lr: jm.minimize(_quadratic, X0, jm.GradientDescent(lr), args=(A, B)).x)(lrs)
    np.testing.assert_allclose(xs, sol.x, atol=1e-4)


def test_vmap_over_first_order_hyperparameters():
    _check_vmap(lambda b: jm.OptimisticGradient(0.2, b, gtol=1e-8), jnp.array([0.0, 0.05, 0.1]))
    _check_vmap(lambda lr0: jm.Fromage(_InverseDecay(lr0), gtol=1e-3), jnp.array([0.05, 0.1]), max_steps=3000)


def _lbfgs_hz(v):
    gtol, sigma = v[0], v[1]
    return jm.LBFGS(linesearch=SL.HagerZhang(sigma=sigma), gtol=gtol)


@pytest.mark.parametrize(
    "make",
    [_lbfgs_hz, lambda v: jm.GradientDescent(0.3, gtol=v[0])],
    ids=["LBFGS-HagerZhang", "GradientDescent"],
)
def test_vmap_over_gtol(make):
    # (gtol, a line search constant) per batch member
    gtols = jnp.array([1e-2, 1e-5, 1e-9])
    values = jnp.stack([gtols, jnp.array([0.1, 0.5, 0.9])], axis=1)
    sol = _check_vmap(make, values, fn=_quartic)
    assert bool(jnp.all(sol.success))
    assert bool(jnp.all(jnp.max(jnp.abs(sol.grad), axis=1) <= gtols))
    assert int(sol.num_steps[0]) < int(sol.num_steps[2])
