"""`python -m benchmarks`: jaxmin L-BFGS against SciPy, Optax, Optimistix, JAXopt.

See benchmarks/README.md for the methodology.
"""

from __future__ import annotations

import os

# Single-threaded BLAS for SciPy/NumPy (the Makefile sets it too); must happen
# before numpy/scipy are imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

from . import problems as P  # noqa: E402
from . import report  # noqa: E402
from . import runners as R  # noqa: E402
from .suite import log, run_batch, run_problem, warmup  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def parse(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smoke run (~1 min): 3 problems, 3 repeats, batch of 100")
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PROBLEM",
        help="run only these problems (repeatable or comma-separated; prefix match, "
        "e.g. 'rosenbrock'; 'batch' selects the batch benchmark). Choices: "
        + ", ".join(list(P.BUILDERS) + ["batch"]),
    )
    p.add_argument(
        "--solvers", default="", help="comma-separated subset of " + ", ".join(dict.fromkeys([*R.SINGLE, *R.BATCH]))
    )
    p.add_argument("--repeats", type=int, default=None, help="steady-state repeats (default 7, quick 3)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default 1000, quick 100)")
    p.add_argument(
        "--budget", type=float, default=60.0, help="seconds of steady timing per solver and problem before "
        "further repeats of that solver are dropped (default 60)"
    )
    p.add_argument("--out", default=None, help="output prefix (default benchmarks/results; "
                   "benchmarks/results_quick with --quick, benchmarks/results_partial with filters)")
    p.add_argument("--traceback", action="store_true", help="print tracebacks of solver errors")
    return p.parse_args(argv)


def select_problems(only: list[str], quick: bool) -> tuple[list[str], bool]:
    names = P.QUICK if quick else list(P.BUILDERS)
    if not only:
        return names, True
    wanted = [w.strip() for o in only for w in o.split(",") if w.strip()]
    unknown = [w for w in wanted if w != "batch" and not any(n.startswith(w) for n in P.BUILDERS)]
    if unknown:
        sys.exit(f"unknown problem(s) {unknown}; choose from {list(P.BUILDERS) + ['batch']}")
    chosen = [n for n in P.BUILDERS if any(n.startswith(w) for w in wanted if w != "batch")]
    return chosen, "batch" in wanted


def main(argv=None) -> int:
    args = parse(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*jaxopt.*")
    repeats = args.repeats or (3 if args.quick else 7)
    batch_size = args.batch_size or (100 if args.quick else 1000)
    names, do_batch = select_problems(args.only, args.quick)
    filtered = bool(args.only or args.solvers)
    out = args.out or os.path.join(
        HERE, "results_quick" if args.quick else ("results_partial" if filtered else "results")
    )
    command = "OPENBLAS_NUM_THREADS=" + os.environ["OPENBLAS_NUM_THREADS"] + " " + " ".join(
        shlex.quote(a) for a in [os.path.relpath(sys.executable), "-m", "benchmarks", *(argv or sys.argv[1:])]
    )
    command = f"`{command}`"
    if os.environ.get("MAKELEVEL"):
        command = f"`make bench`, i.e. {command}"

    wanted_solvers = [s.strip() for s in args.solvers.split(",") if s.strip()] or [*R.SINGLE, *R.BATCH]
    single = {k: v for k, v in R.SINGLE.items() if k in wanted_solvers}
    batch = {k: v for k, v in R.BATCH.items() if k in wanted_solvers}
    skip: dict[str, str] = {}
    ok, why = R.jaxmin_available()
    if not ok:
        skip["jaxmin"] = skip["jaxmin-jit"] = f"skipped: {why}"
        log(f"NOTE: jaxmin runner skipped ({why})")

    t_start = time.perf_counter()
    log(f"warm-up ({', '.join(k for k in single if k not in skip)}) ...")
    warmup({k: v for k, v in single.items() if k not in skip})

    problem_rows = []
    descriptions = {}
    for name in names:
        prob = P.get(name)
        descriptions[name] = prob.description
        log(f"[{name}] {prob.description}")
        problem_rows.append(run_problem(prob, single, repeats, args.budget, skip))
    batch_rows = []
    if do_batch:
        log(f"[batch] vmap over {batch_size} Rosenbrock n=2 problems")
        batch_rows = run_batch(batch_size, batch, repeats, args.budget, skip)
    elapsed = time.perf_counter() - t_start

    md = render(problem_rows, batch_rows, command, repeats, batch_size, elapsed, descriptions)
    print(md)
    with open(out + ".md", "w") as fh:
        fh.write(md)
    try:
        report.plot(problem_rows, batch_rows, out + ".png")
    except Exception as e:  # noqa: BLE001
        log(f"plot failed: {type(e).__name__}: {e}")
    log(f"wrote {out}.md and {out}.png in {elapsed:.0f}s")
    return 0


def render(problem_rows, batch_rows, command, repeats, batch_size, elapsed, descriptions) -> str:
    parts = [
        "# jaxmin benchmark results\n",
        report.machine_info(command),
        f"- steady repeats: {repeats} (round-robin interleaved), total wall time {elapsed:.0f} s\n",
        "\nAll solves in float64, target ‖∇f‖∞ ≤ 1e-6, history 10, max 10000 iterations. "
        "*first call* = trace + compile + run from the standard start with a fresh objective "
        "closure (nothing cached); *steady* = median over repeated calls from the steady start "
        "x0 + 0.01·N(0, I) (fixed seed), solvers interleaved round-robin; *ratio* = steady / the "
        "best peer's steady (best non-jaxmin solver that met the target); iters, evals and ‖g‖∞ "
        "are given for the standard start / the steady start; ‖g‖∞ is recomputed by the harness "
        "at the returned x (✓ = met the target from both starts, ✗ = did not); f is at the "
        "standard-start solution. *jaxmin floor* = jaxmin's evaluations from the steady start × "
        "t_eval, the time of one value_and_grad measured in a jitted fori_loop. Solver "
        "configuration and evaluation counting: see `benchmarks/README.md`.\n",
        "\nOptimistix rtol = atol per problem (calibrated, see README): "
        + ", ".join(f"{n}: {R.OPTX_TOL.get(n, R.OPTX_TOL_DEFAULT):g}" for n in P.BUILDERS)
        + f" (batch: {R.OPTX_TOL_BATCH:g}); JAXopt tol = {R.JAXOPT_TOL:g} on ‖g‖₂.\n",
    ]
    if problem_rows:
        parts.append("\n## Single problems\n\n")
        parts.extend(f"- `{n}`: {d}\n" for n, d in descriptions.items())
        parts.append("\n")
        parts.append(report.problem_table([r for rows in problem_rows for r in rows]))
    if batch_rows:
        parts.append(f"\n## Batch: jax.vmap over {batch_size} Rosenbrock n=2 problems\n\n")
        parts.append(
            "Starts (-1.2, 1) + 0.1·N(0, I) (seed 2024; steady: seed 2025). SciPy solves the "
            "problems one after the other in a Python loop. iters/evals are per problem.\n\n"
        )
        parts.append(report.batch_table(batch_rows))
    return "".join(parts)


if __name__ == "__main__":
    sys.exit(main())
