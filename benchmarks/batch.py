"""The ``batch`` section: one ``jax.jit(jax.vmap(solve))`` over a batch of
Rosenbrock n=2 problems (each with its own start), jaxmin ``LBFGS`` against the JAX
peers; SciPy L-BFGS-B solves the members one after the other in a Python loop."""

from __future__ import annotations

from . import problems as P
from . import report
from . import runners as R
from .protocol import Options
from .suite import HarnessResult, HarnessSection


def problems(options: Options) -> list[P.Problem]:
    return [P.batch_problem(options.batch_size or (100 if options.quick else 1000))]


def markdown(result: HarnessResult) -> str:
    size = result.rows[0][0].batch
    return "".join([
        f"\n## Batch: jax.vmap over {size} Rosenbrock n=2 problems\n\n",
        f"Starts (-1.2, 1) + {P.BATCH_SCALE:g}·N(0, I) (seed {P.BATCH_SEED}; steady: seed "
        f"{P.BATCH_SEED_STEADY}). SciPy solves the problems one after the other in a Python loop. "
        f"iters/evals are per problem. Target ‖∇f‖∞ ≤ {P.GTOL:g} per member; Optimistix rtol = atol "
        f"= {R.OPTX_TOL_BATCH:g} (calibrated). Steady = median of {result.repeats} interleaved "
        f"calls. Section wall time {result.elapsed:.0f} s.\n\n",
        report.batch_table([r for rows in result.rows for r in rows]),
    ])


SECTION = HarnessSection("batch", R.BATCH, ("batch-rosenbrock-2",), problems, markdown, repeats=(7, 3), budget=60.0)
