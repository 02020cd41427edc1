"""`jm.testing.check_derivatives`: derivatives through a solution against finite
differences; a wrong hypergradient (a derivative rule that is half wrong) is caught, a
correct one passes, for pytrees, scalar outputs, float32 and float64."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxtyping import Array

import jaxmin as jm
from jaxmin.testing import check_derivatives

X = jax.random.normal(jax.random.key(1), (20, 4))
Y = X @ jnp.arange(4.0)


def ridge(w, lam):
    return 0.5 * jnp.sum((X @ w - Y) ** 2) + 0.5 * lam * jnp.dot(w, w)


@jax.custom_jvp
def scaled_derivative(lam, s):
    """`lam`, whose derivative rule multiplies tangents by `s` (1: correct)."""
    return lam


@scaled_derivative.defjvp
def _scaled_derivative_jvp(primals, tangents):
    (lam, s), (dlam, _) = primals, tangents
    return lam, s * dlam


class RidgeSolve(eqx.Module):
    """`lam -> argmin ridge`; `s` plants a wrong derivative rule. A Module, so the
    correct and the wrong solve share one compilation."""

    s: Array

    def __call__(self, lam):
        lam = scaled_derivative(lam, self.s)
        return jm.minimize(ridge, jnp.zeros(4), jm.LBFGS(gtol=1e-10), args=(lam,)).x


def test_hypergradient_correct_and_wrong():
    # The inner solve ends at f's rounding, its x accurate to ~1e-9, so a difference of
    # step h carries noise ~1e-9 / h (at the default h ~1e-5 the check's own `fd_error`
    # is ~1e-4): a step of 1e-3 leaves ~1e-5, far below the wrong rule's 0.5.
    rep = check_derivatives(RidgeSolve(jnp.array(1.0)), 1.5, step=1e-3)
    assert rep, rep.why
    assert float(rep.relative_error[0]) < 1e-4
    rep = check_derivatives(RidgeSolve(jnp.array(0.5)), 1.5, step=1e-3)
    assert not rep.forward_ok and not rep.reverse_ok and not rep, rep.why
    np.testing.assert_allclose(rep.relative_error, 0.5, rtol=1e-4)


def closed_form(theta):
    return {"y": jnp.sin(theta["a"]) * theta["b"] ** 2, "s": jnp.sum(theta["a"] * theta["b"])}


@jax.custom_jvp
def wrong_sin(x):
    return jnp.sin(x)


wrong_sin.defjvp(lambda p, t: (jnp.sin(p[0]), jnp.cos(p[0]) * t[0] * 1.05))  # 5% off


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_pytrees_and_dtypes(dtype):
    theta = {"a": jnp.array([0.3, 1.2, -0.7], dtype), "b": jnp.array([1.5, -0.4, 2.0], dtype)}
    rep = check_derivatives(closed_form, theta)
    assert rep, rep.why
    assert rep.forward_error.shape == (3,) and rep.forward_error.dtype == dtype
    wrong = check_derivatives(lambda t: wrong_sin(t["a"]) * t["b"], theta)
    assert not wrong, wrong.why


def test_scalar_output_and_given_directions():
    theta = {"a": jnp.array([0.3, 1.2]), "b": jnp.array([1.5, -0.4])}
    rep = check_derivatives(lambda t: closed_form(t)["s"], theta, directions=[theta, theta])
    assert rep and rep.forward_error.shape == (2,), rep.why
