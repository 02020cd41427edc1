"""`search_step`: direction -> line search -> accept, shared by the line-search solvers.

It also says when a step failed and why, so every solver ends a solve the same way
(`STAGNATED`, `NONFINITE` or `LINESEARCH_FAILED`) and never loops on a failure.
"""

from typing import Optional

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Scalar

from .._misc import as_dtype, below_precision, eps, is_finite, max_norm
from .._solution import Status
from .._typing import Objective, Vector
from .._typing import ScalarLike
from ..linesearch import AbstractLineSearch

# Steps in a row that may leave f unchanged (to rounding) while x still moves: beyond
# this f carries no information and the solve is called stagnated.
MAX_FLAT_STEPS = 10


class SearchStep(eqx.Module):
    """The outcome of one `search_step`.

    - `x`, `f`, `g`: the new iterate (the old one where the step was rejected).
    - `alpha`, `ls_evals`: the line search's step and evaluations.
    - `failed`: no decrease was found, or the step changed neither f nor x beyond
      rounding. The solver then retries from a safer direction, or stops.
    - `at_precision`: the full step is within ~100 rounding errors of x, so the model's
      minimiser is x to the precision at hand: a failure there needs no retry.
    - `flat_steps`: consecutive accepted steps that left f unchanged to rounding.
    - `status`: why to stop if the solver stops after this step.
    """

    x: Vector
    f: Scalar
    g: Vector
    alpha: Scalar
    ls_evals: Int[Array, ""]
    failed: Bool[Array, ""]
    at_precision: Bool[Array, ""]
    flat_steps: Int[Array, ""]
    status: Int[Array, ""]


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
) -> SearchStep:
    """Search along the descent direction `p` from `x` and accept any decrease.

    `predicted` is the decrease the solver's model expects from a full step (`inf`
    where it has none): a failure whose predicted decrease is below f's precision is
    `STAGNATED`, not a line-search failure.
    """
    f_and_g = lambda z: jax.value_and_grad(fn)(z, *args)
    ls = linesearch(f_and_g, x, p, f, g, 1.0)
    # a decrease that misses the search's conditions is still progress: keep it
    accept = ls.ok | (ls.f < f)
    p_max, x_max = max_norm(p), max_norm(x)
    f_flat = below_precision(ls.f - f, f, x)
    x_flat = jnp.where(accept, ls.alpha, 0.0) * p_max <= 4 * eps(x) * x_max
    at_precision = p_max <= 100 * eps(x) * x_max
    # (a margin of 100 rounding errors: a decrease must stand out of f's noise to pass
    # a sufficient-decrease test)
    lost = below_precision(predicted / 25, f, x) | at_precision
    stagnated = (accept & f_flat) | (~accept & lost)
    status = jnp.where(
        stagnated,
        Status.STAGNATED,
        jnp.where(jnp.isfinite(ls.f), Status.LINESEARCH_FAILED, Status.NONFINITE),
    )
    return SearchStep(
        x=jnp.where(accept, x + ls.alpha * p, x),
        f=jnp.where(accept, ls.f, f),
        g=jnp.where(accept, ls.g, g),
        alpha=ls.alpha,
        ls_evals=ls.num_evals,
        failed=~accept | (f_flat & x_flat),
        at_precision=at_precision,
        flat_steps=jnp.where(accept & f_flat, flat_steps + 1, 0),
        status=status.astype(jnp.int32),
    )


def must_stop(step: SearchStep, retry_possible: Bool[Array, ""]) -> Bool[Array, ""]:
    """Stop after a failed step that no safer direction can retry, or after a run of
    steps that left f unchanged."""
    return (step.failed & (~retry_possible | step.at_precision)) | (step.flat_steps >= MAX_FLAT_STEPS)


def check_options(solver, gtol: ScalarLike, linesearch: Optional[AbstractLineSearch]) -> None:
    """Raise for a negative `gtol` (when a Python number) or a non-search `linesearch`
    (`None` stands for "no line search")."""
    name = type(solver).__name__
    if isinstance(gtol, (int, float)) and gtol < 0:
        raise ValueError(f"`{name}(gtol=...)` must be non-negative.")
    if linesearch is not None and not isinstance(linesearch, AbstractLineSearch):
        raise TypeError(f"`{name}(linesearch=...)` must be a `jm.linesearch` search.")


def start_point(fn: Objective, x: Vector, args: tuple):
    """`(f, g, status)` at the initial point: `NONFINITE` where f or g is NaN/inf."""
    f, g = jax.value_and_grad(fn)(x, *args)
    f = f.astype(x.dtype)
    status = jnp.where(is_finite(f, g), Status.CONVERGED, Status.NONFINITE).astype(jnp.int32)
    return f, g, status


def gradient_terminate(state, gtol: ScalarLike):
    """`(done, status)` for solvers that converge when `max|g| <= gtol`: done at
    convergence or at a recorded failure."""
    converged = max_norm(state.g) <= as_dtype(gtol, state.g)
    failed = state.status != Status.CONVERGED
    return converged | failed, jnp.where(converged, Status.CONVERGED, state.status)
