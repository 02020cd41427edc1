"""The line-search interface: `AbstractLineSearch` and `LineSearchResult`.

Notation (Nocedal & Wright): `phi(alpha) = f(x + alpha p)`, `dphi = grad f . p`.
"""

import abc
from typing import Callable

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Scalar

from .._typing import ScalarLike, Vector

FAndG = Callable[[Vector], tuple[Scalar, Vector]]


class LineSearchResult(eqx.Module):
    """What a line search returns.

    - `alpha`: the step taken along `p`. When `ok` is False this is the trial with
      the lowest f if it decreased f, else the last trial tried.
    - `f`, `g`: value and gradient at `x + alpha p` (`f` is `inf` where the
      objective was NaN or inf), reused by the solver so a step costs no extra
      evaluation.
    - `ok`: the search's conditions (Armijo, or Wolfe) hold at `alpha`.
    - `num_evals`: evaluations of `f_and_g` made by the search.
    """

    alpha: Scalar
    f: Scalar
    g: Vector
    ok: Bool[Array, ""]
    num_evals: Int[Array, ""]


def best_or_last(use_best, best: tuple, last: tuple, ok, num_evals) -> LineSearchResult:
    """The result from `(alpha, f, g)` of the best trial where `use_best`, else of the
    last one (the rule `LineSearchResult` documents for a failed search)."""
    alpha, f, g = (jnp.where(use_best, b, l) for b, l in zip(best, last))
    return LineSearchResult(alpha=alpha, f=f, g=g, ok=ok, num_evals=num_evals)


class AbstractLineSearch(eqx.Module):
    """A step-length rule along a descent direction: the base class of
    `Backtracking`, `Zoom`, `MoreThuente` and `HagerZhang`, for writing your own.

    Subclass it and implement `__call__`. Every search runs its own bounded loop, so
    it terminates; a NaN or inf trial value counts as a step that is too long and is
    never accepted. A solver calls it once per step and reuses the returned `f` and
    `g`, so a step costs no evaluation beyond the search's own.
    """

    @abc.abstractmethod
    def __call__(
        self,
        f_and_g: FAndG,
        x: Vector,
        p: Vector,
        f0: Scalar,
        g0: Vector,
        alpha0: ScalarLike = 1.0,
    ) -> LineSearchResult:
        """Find `alpha > 0` along descent direction `p` from `x`.

        **Arguments:**

        - `f_and_g`: `z -> (f(z), grad f(z))`.
        - `x`, `p`: the point and the search direction (`g0 . p < 0`).
        - `f0`, `g0`: value and gradient at `x`.
        - `alpha0`: the first trial step.
        """


def check_wolfe_constants(search: "AbstractLineSearch") -> None:
    """Raise for Wolfe constants outside `0 < c1 < c2 < 1` (checked when they are
    Python numbers; traced values are the caller's responsibility) or no evaluations."""
    name = type(search).__name__
    c1, c2 = search.c1, search.c2
    if isinstance(c1, (int, float)) and isinstance(c2, (int, float)) and not 0 < c1 < c2 < 1:
        raise ValueError(f"`{name}` needs 0 < c1 < c2 < 1; got c1={c1}, c2={c2}.")
    if search.max_steps < 1:
        raise ValueError(f"`{name}(max_steps=...)` must be at least 1.")


def evaluate(f_and_g: FAndG, x: Vector, p: Vector, alpha: Scalar):
    """`(phi(alpha), grad f, dphi(alpha))` with non-finite values mapped to `inf`.

    Mapping NaN to `inf` makes a bad trial compare as "too long" in every test, so no
    search accepts it and each one shrinks the step.
    """
    f, g = f_and_g(x + alpha * p)
    f = f.astype(x.dtype)
    dphi = jnp.dot(g, p)
    finite = jnp.isfinite(f) & jnp.isfinite(dphi)
    return jnp.where(finite, f, jnp.inf), g, jnp.where(finite, dphi, 0.0)
