"""Type aliases used across jaxmin."""

from typing import Callable, Union

from jaxtyping import Array, ArrayLike, Float

Vector = Float[Array, " n"]
ScalarLike = Union[float, ArrayLike]
Objective = Callable[..., Float[Array, ""]]
"""`fn(x, *args)` returning a real scalar."""
Schedule = Callable[[Array], Array]
