"""The compile options of a direct call, chosen by the problem's size: the unknowns, and
the numbers in its arrays, those passed as arguments and those its functions hold."""

import jax.numpy as jnp
import numpy as np

from jaxmin import _compiled

_PROGRAM = _compiled.Program(default="default", small="small", tiny="tiny")
_GLOBAL_DATA = np.ones(100_000)


def _pick(x0, dynamic=(), functions=()):
    return _compiled._for_size(_PROGRAM, x0, list(dynamic), tuple(functions))


def _uses_global(x):
    return jnp.sum(x) + jnp.sum(_GLOBAL_DATA)


def test_sizes_pick_tiny_small_or_default():
    assert _pick(jnp.zeros(_compiled.TINY_PROBLEM)) == "tiny"
    assert _pick(jnp.zeros(_compiled.TINY_PROBLEM + 1)) == "small"
    assert _pick(jnp.zeros(_compiled.SMALL_PROBLEM + 1)) == "default"
    assert _pick(jnp.zeros(3), [np.ones(_compiled.TINY_DATA)]) == "tiny"
    assert _pick(jnp.zeros(3), [np.ones(_compiled.TINY_DATA + 1)]) == "small"
    assert _pick(jnp.zeros(3), [np.ones(_compiled.SMALL_DATA + 1)]) == "default"
    # a pytree x0 counts all its leaves
    assert _pick({"a": jnp.zeros(10), "b": jnp.zeros(10)}) == "small"


def test_data_a_function_holds_counts():
    data = np.ones(5000)
    closure = lambda x: jnp.sum(x) + jnp.sum(data)  # noqa: E731
    assert _pick(jnp.zeros(3), functions=[closure]) == "small"
    assert _pick(jnp.zeros(3), functions=[_uses_global]) == "default"
    # scalars held are not data
    lam = 0.5
    assert _pick(jnp.zeros(3), functions=[lambda x: lam * jnp.sum(x)]) == "tiny"
