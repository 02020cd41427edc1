"""`search_step`: direction -> line search -> accept, shared by the line-search solvers
(no search where a solver certifies a first-order stop).

How the step ended (accepted, flat, failed, and whether the solve ends) is decided by
`_stopping.end_step`, so every solver ends a solve the same way.
"""

from typing import Optional

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Scalar

from .._misc import eps, is_finite, max_norm
from .._typing import Objective, ScalarLike, Vector
from ..linesearch import AbstractLineSearch
from ._stopping import end_step, relative_optimality, start_reason


class SearchStep(eqx.Module):
    """The outcome of one `search_step`.

    - `x`, `f`, `g`: the new iterate (the old one where the step was rejected).
    - `alpha`, `ls_evals`: the line search's step and evaluations.
    - `failed`: no decrease was found, or the step changed neither f nor x beyond
      rounding. The solver then retries from a safer direction, or stops.
    - `flat_steps`: consecutive accepted steps that left f unchanged to rounding.
    - `reason`: `RUNNING`, or why the solve ends after this step.
    """

    x: Vector
    f: Scalar
    g: Vector
    alpha: Scalar
    ls_evals: Int[Array, ""]
    failed: Bool[Array, ""]
    flat_steps: Int[Array, ""]
    reason: Int[Array, ""]


def search_step(
    linesearch: AbstractLineSearch,
    fn: Objective,
    args: tuple,
    x: Vector,
    f: Scalar,
    g: Vector,
    p: Vector,
    predicted: Scalar,
    flat_steps: Int[Array, ""],
    retry_possible: Bool[Array, ""],
    ftol: Array,
    model_exact: Bool[Array, ""] = False,
    certified: Optional[Bool[Array, ""]] = None,
) -> SearchStep:
    """Search along the descent direction `p` from `x` and accept any decrease.

    `predicted` is the decrease the solver's model expects from a full step (`inf`
    where it has none); `retry_possible` says whether a failure can be retried from a
    safer direction; `model_exact` that `predicted` is an accurate Newton decrement
    (see `_stopping.end_step`). Where `certified` (a certified first-order stop,
    `_stopping.certifies`; `None`: the solver certifies none) the step runs no search
    and stays at `(x, f, g)`.
    """
    if certified is not None:
        zero = jnp.zeros((), jnp.int32)
        stay = SearchStep(x=x, f=f, g=g, alpha=jnp.zeros((), f.dtype), ls_evals=zero,
                          failed=jnp.array(False), flat_steps=flat_steps, reason=zero)

        def search():
            return search_step(linesearch, fn, args, x, f, g, p, predicted, flat_steps,
                               retry_possible, ftol, model_exact)

        return jax.lax.cond(certified, lambda: stay, search)
    f_and_g = lambda z: jax.value_and_grad(fn)(z, *args)
    ls = linesearch(f_and_g, x, p, f, g, 1.0)
    # a decrease that misses the search's conditions is still progress: keep it
    accept = ls.ok | (ls.f < f)
    x_new = jnp.where(accept, x + ls.alpha * p, x)
    f_new, g_new = jnp.where(accept, ls.f, f), jnp.where(accept, ls.g, g)
    end = end_step(
        x=x, f=f, f_new=f_new, accepted=accept,
        moved=jnp.where(accept, ls.alpha, 0.0) * max_norm(p), predicted=predicted,
        at_precision=max_norm(p) <= 100 * eps(x) * max_norm(x), retry_possible=retry_possible,
        trial_f=ls.f, optimality=relative_optimality(g_new, x_new), flat_steps=flat_steps, ftol=ftol,
        model_exact=model_exact,
    )
    return SearchStep(
        x=x_new, f=f_new, g=g_new, alpha=ls.alpha, ls_evals=ls.num_evals,
        failed=end.failed, flat_steps=end.flat_steps, reason=end.reason,
    )


def check_options(solver, gtol: ScalarLike, linesearch: Optional[AbstractLineSearch]) -> None:
    """Raise for a negative `gtol` or `ftol` (when Python numbers) or a non-search
    `linesearch` (`None` stands for "no line search")."""
    name = type(solver).__name__
    for tol_name, tol in (("gtol", gtol), ("ftol", solver.ftol)):
        if isinstance(tol, (int, float)) and tol < 0:
            raise ValueError(f"`{name}({tol_name}=...)` must be non-negative.")
    if linesearch is not None and not isinstance(linesearch, AbstractLineSearch):
        raise TypeError(f"`{name}(linesearch=...)` must be a `jm.linesearch` search.")


def start_point(fn: Objective, x: Vector, args: tuple):
    """`(f, g, reason)` at the initial point: `NONFINITE_START` where f or g is NaN/inf."""
    f, g = jax.value_and_grad(fn)(x, *args)
    f = f.astype(x.dtype)
    return f, g, start_reason(is_finite(x, f, g))
