"""Shared test utilities."""

import jax
import jax.numpy as jnp
import numpy as np


def tree_allclose(a, b, rtol=1e-7, atol=0.0) -> bool:
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    return ta == tb and all(np.allclose(x, y, rtol=rtol, atol=atol) for x, y in zip(la, lb))


def tree_equal_bitwise(a, b) -> bool:
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    return ta == tb and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def tol(dtype) -> float:
    """A relative tolerance that a converged solve meets in `dtype`."""
    return 1e-6 if jnp.dtype(dtype) == jnp.float64 else 2e-3


class TraceCounter:
    """Wraps an objective; counts how often JAX traces it (once per compilation)."""

    def __init__(self, fn):
        self.fn = fn
        self.count = 0

    def __call__(self, x, *args):
        self.count += 1
        return self.fn(x, *args)


def max_abs(tree) -> float:
    return max(float(jnp.max(jnp.abs(leaf))) for leaf in jax.tree.leaves(tree))


@jax.custom_jvp
def wrong_gradient(x):
    """`sum((x - 1)^2)` whose derivative has the wrong sign: no line search can succeed."""
    return jnp.sum((x - 1.0) ** 2)


@wrong_gradient.defjvp
def _wrong_gradient_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return wrong_gradient(x), jnp.dot(-2.0 * (x - 1.0), dx)


def assert_first_order_certificate(sol, gtol) -> None:
    """A successful unconstrained solve's verdict holds at its answer: `max|g| <= gtol`
    where it stopped by `gtol`; where it stopped at f's rounding (`FTOL`, `PRECISION`),
    the documented precision level `max_i |g_i| max(|x_i|, 1) <= ftol^(1/3) max(|f|, 1)`
    with the default `ftol = eps / 4` (`jaxmin/solvers/_stopping.py`)."""
    import jaxmin as jm

    if int(sol.reason) == jm.Reason.GTOL:
        assert max_abs(sol.grad) <= gtol, (max_abs(sol.grad), gtol)
    elif bool(sol.success):
        relative = max_abs(jax.tree.map(lambda g, x: g * jnp.maximum(jnp.abs(x), 1.0), sol.grad, sol.x))
        level = float(jnp.finfo(jnp.result_type(sol.fun)).eps / 4) ** (1 / 3) * max(abs(float(sol.fun)), 1.0)
        assert relative <= level, (jm.Reason(int(sol.reason)).name, relative, level)


def callback_objective(value, gradient):
    """`fn(x)` computed on the host by NumPy `value(x)` (float32), with the NumPy
    `gradient(x)` as its VJP: a simulator JAX can differentiate once and not twice."""

    @jax.custom_vjp
    def fn(x):
        return jax.pure_callback(value, jax.ShapeDtypeStruct((), jnp.float32), x)

    def backward(x, ct):
        return (ct * jax.pure_callback(gradient, jax.ShapeDtypeStruct(x.shape, jnp.float32), x),)

    fn.defvjp(lambda x: (fn(x), x), backward)
    return fn

