"""The ``lbfgs`` section: jaxmin ``LBFGS`` (called directly and inside ``jax.jit``)
against SciPy L-BFGS-B, Optax, Optimistix and JAXopt on the single problems of
``problems.py``: first call, steady time, evaluations, the gradient norm recomputed
by the harness, and jaxmin's evaluation floor."""

from __future__ import annotations

from . import problems as P
from . import report
from . import runners as R
from .suite import HarnessResult, HarnessSection, single_problems

METHOD = (
    "All solves in float64, target ‖∇f‖∞ ≤ {gtol:g}, max {maxiter} iterations (L-BFGS: history {history}). "
    "*first call* = trace + compile + run from the standard start with a fresh objective "
    "closure (nothing cached); *steady* = median over repeated calls from the steady start "
    "x0 + 0.01·N(0, I) (fixed seed), solvers interleaved round-robin; *ratio* = steady / the "
    "best peer's steady (best non-jaxmin solver that met the target); iters, evals and ‖g‖∞ "
    "are given for the standard start / the steady start; ‖g‖∞ is recomputed by the harness "
    "at the returned x (✓ = met the target from both starts, ✗ = did not); f is at the "
    "standard-start solution. *jaxmin floor* = jaxmin's evaluations from the steady start × "
    "t_eval, the time of one value_and_grad measured in a jitted fori_loop. Solver "
    "configuration and evaluation counting: see `benchmarks/README.md`.\n"
)


def problem_list(descriptions: dict[str, str]) -> str:
    return "".join(f"- `{n}`: {d}\n" for n, d in descriptions.items()) + "\n"


def markdown(result: HarnessResult) -> str:
    tols = ", ".join(f"{n}: {R.OPTX_TOL.get(n, R.OPTX_TOL_DEFAULT):g}" for n in result.descriptions)
    return "".join([
        "\n## L-BFGS: single problems\n\n",
        METHOD.format(gtol=P.GTOL, maxiter=P.MAXITER, history=P.HISTORY),
        f"Steady = median of {result.repeats} interleaved calls, at most {result.budget:g} s per "
        f"solver and problem (fewer: `(n=…)`). Optimistix rtol = atol per problem (calibrated, "
        f"see README): {tols}; JAXopt tol = {R.JAXOPT_TOL:g} on ‖g‖₂. "
        f"Section wall time {result.elapsed:.0f} s.\n\n",
        problem_list(result.descriptions),
        report.problem_table([r for rows in result.rows for r in rows]),
        f"\nChart: `{result.chart}`.\n" if result.chart else "",
    ])


SECTION = HarnessSection(
    "lbfgs", R.SINGLE, tuple(P.BUILDERS), single_problems, markdown, repeats=(7, 3), budget=60.0,
    chart=("", "Steady-state solve time (hatched: did not reach ‖g‖∞ ≤ 1e-6)"),
)
