"""Learning rates: a number, or a schedule `step -> value`, read at step `k`.

Every first-order solver takes its step sizes through this module, so a schedule
is always called with the step counter (an int32 array) and every expression of
the learning rate (`alpha`, `alpha**2`, ...) is computed on the value it returns,
never on the schedule itself.
"""

from typing import Union

import equinox as eqx
from jax.tree_util import Partial
from jaxtyping import Array, Int, Scalar

from .._misc import as_dtype
from .._typing import ScalarLike, Schedule, Vector

LearningRate = Union[ScalarLike, Schedule]
"""A Python number, a JAX array, or any callable `step -> value` (such as an optax
schedule)."""


def as_learning_rate(value: LearningRate) -> LearningRate:
    """Field converter: a plain callable becomes a pytree node with no leaves.

    Functions are not JAX types; wrapped in `Partial` the function is static
    structure (a new schedule object compiles anew, as a new `fn` does) while
    numbers and arrays stay traced leaves. Schedules that are `eqx.Module`s are
    pytrees already and are kept as they are, so their arrays are traced too.
    """
    if callable(value) and not isinstance(value, (eqx.Module, Partial)):
        return Partial(value)
    return value


def learning_rate_at(value: LearningRate, k: Int[Array, ""], like: Vector) -> Scalar:
    """The learning rate at step `k` (counted from 0), in `like`'s dtype."""
    if callable(value):
        value = value(k)
    return as_dtype(value, like)


def check_learning_rate(solver, name: str, value: LearningRate, allow_zero: bool = False) -> None:
    """Raise for a learning rate that is a Python number out of range (traced values
    and schedules are the caller's responsibility)."""
    if isinstance(value, bool) or not (callable(value) or _is_number_or_array(value)):
        raise TypeError(
            f"`{type(solver).__name__}({name}=...)` must be a number, an array or a "
            f"schedule `step -> value`; got {value!r}."
        )
    if isinstance(value, (int, float)) and (value < 0 or (value == 0 and not allow_zero)):
        bound = "non-negative" if allow_zero else "positive"
        raise ValueError(f"`{type(solver).__name__}({name}=...)` must be {bound}; got {value}.")


def _is_number_or_array(value) -> bool:
    return isinstance(value, (int, float)) or hasattr(value, "dtype")
