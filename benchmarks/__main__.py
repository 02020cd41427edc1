"""`python -m benchmarks`: jaxmin L-BFGS against SciPy, Optax, Optimistix, JAXopt,
jaxmin Newton-CG against SciPy Newton-CG and trust-ncg, and jax.grad through an
L-BFGS solve (implicit differentiation) against Optimistix and JAXopt.

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
    p.add_argument("--quick", action="store_true", help="smoke run (~1.5 min): 3 problems, 3 repeats, batch of 100")
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PROBLEM",
        help="run only these problems and/or sections (repeatable or comma-separated; problems "
        "by prefix, e.g. 'rosenbrock'; sections by exact name: 'lbfgs' (the L-BFGS table), "
        "'newton' (the Newton-CG table), 'batch' (the vmap benchmark), 'scaling' (batched "
        "throughput at batch sizes 1..10^4 and the slow-member experiment), 'hypergrad' (jax.grad "
        "through a solve)). Naming a section runs "
        "only the named sections ('lbfgs' and 'newton' on the chosen problems, default all); "
        "naming only problems runs 'lbfgs' and 'newton' on them; 'hypergrad' (the implicit-"
        "differentiation benchmark, its own problem) runs only when named or with no --only. Problems: "
        + ", ".join(P.BUILDERS),
    )
    p.add_argument(
        "--solvers",
        default="",
        help="comma-separated subset of "
        + ", ".join(dict.fromkeys([*R.SINGLE, *R.BATCH, *R.NEWTON, *R.HYPERGRAD]))
        + " (a section left with no solver is not run)",
    )
    p.add_argument("--repeats", type=int, default=None, help="steady-state repeats (default 7, quick 3)")
    p.add_argument(
        "--newton-repeats", type=int, default=None,
        help="steady-state repeats of the Newton-CG section (default 5, quick 3)",
    )
    p.add_argument(
        "--newton-budget", type=float, default=10.0,
        help="--budget of the Newton-CG section (default 10 s)",
    )
    p.add_argument(
        "--newton-solve-limit", type=float, default=R.NEWTON_SOLVE_LIMIT_S,
        help="seconds one SciPy Newton-CG / trust-ncg solve may take before it is aborted and "
        f"reported as 'skipped: over budget' (default {R.NEWTON_SOLVE_LIMIT_S:g})",
    )
    p.add_argument(
        "--hypergrad-repeats", type=int, default=None,
        help="steady-state repeats of the hypergrad section (default 21, quick 7)",
    )
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default 1000, quick 100)")
    p.add_argument(
        "--budget", type=float, default=60.0, help="seconds of steady timing per solver and problem before "
        "further repeats of that solver are dropped (default 60)"
    )
    p.add_argument("--out", default=None, help="output prefix (default benchmarks/results; "
                   "benchmarks/results_quick with --quick, benchmarks/results_partial with filters)")
    p.add_argument("--traceback", action="store_true", help="print tracebacks of solver errors")
    return p.parse_args(argv)


SECTIONS = ("lbfgs", "newton", "batch", "hypergrad", "scaling", "bounds", "sqp")


def select_problems(only: list[str], quick: bool) -> tuple[list[str], set[str]]:
    """(problems, sections) from the --only tokens; see ``--help``."""
    names = P.QUICK if quick else list(P.BUILDERS)
    if not only:
        return names, set(SECTIONS)
    wanted = [w.strip() for o in only for w in o.split(",") if w.strip()]
    sections = {w for w in wanted if w in SECTIONS}
    probs = [w for w in wanted if w not in SECTIONS]
    unknown = [w for w in probs if not any(n.startswith(w) for n in P.BUILDERS)]
    if unknown:
        sys.exit(f"unknown problem(s) {unknown}; choose from {list(P.BUILDERS)} or sections {list(SECTIONS)}")
    if probs:
        names = [n for n in P.BUILDERS if any(n.startswith(w) for w in probs)]
        if not sections & {"lbfgs", "newton"}:
            sections |= {"lbfgs", "newton"}
    elif not sections & {"lbfgs", "newton"}:
        names = []  # only 'batch' and/or 'hypergrad'
    return names, sections


def main(argv=None) -> int:
    args = parse(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*jaxopt.*")
    repeats = args.repeats or (3 if args.quick else 7)
    newton_repeats = args.newton_repeats or (3 if args.quick else 5)
    batch_size = args.batch_size or (100 if args.quick else 1000)
    hg_repeats = args.hypergrad_repeats or (7 if args.quick else 21)
    R.NEWTON_SOLVE_LIMIT_S = args.newton_solve_limit
    names, sections = select_problems(args.only, args.quick)
    do_batch = "batch" in sections
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

    all_solvers = [*R.SINGLE, *R.BATCH, *R.NEWTON, *R.HYPERGRAD]
    wanted_solvers = [s.strip() for s in args.solvers.split(",") if s.strip()] or all_solvers
    unknown = [s for s in wanted_solvers if s not in all_solvers]
    if unknown:
        sys.exit(f"unknown solver(s) {unknown}; choose from {list(dict.fromkeys(all_solvers))}")
    single = {k: v for k, v in R.SINGLE.items() if k in wanted_solvers} if "lbfgs" in sections else {}
    newton = {k: v for k, v in R.NEWTON.items() if k in wanted_solvers} if "newton" in sections else {}
    batch = {k: v for k, v in R.BATCH.items() if k in wanted_solvers}
    skip: dict[str, str] = {}
    ok, why = R.jaxmin_available()
    if not ok:
        skip["jaxmin"] = skip["jaxmin-jit"] = f"skipped: {why}"
        log(f"NOTE: jaxmin runner skipped ({why})")
    ok, why = R.jaxmin_newton_available()
    if not ok:
        skip["jaxmin-ncg"] = skip["jaxmin-ncg-jit"] = f"skipped: {why}"
        log(f"NOTE: jaxmin NewtonCG runners skipped ({why})")

    t_start = time.perf_counter()
    to_warm = {k: v for k, v in {**single, **newton}.items() if k not in skip}
    log(f"warm-up ({', '.join(to_warm)}) ...")
    warmup(to_warm)

    problem_rows = []
    newton_rows = []
    descriptions = {}
    for name in names if single else []:
        prob = P.get(name)
        descriptions[name] = prob.description
        log(f"[{name}] {prob.description}")
        problem_rows.append(run_problem(prob, single, repeats, args.budget, skip))
    t_newton = time.perf_counter()
    for name in names if newton else []:
        prob = P.get(name)
        descriptions[name] = prob.description
        log(f"[newton {name}] {prob.description}")
        newton_rows.append(
            run_problem(prob, newton, newton_repeats, args.newton_budget, skip, ratio_reference=R.NEWTON_REFERENCE)
        )
    t_newton = time.perf_counter() - t_newton
    batch_rows = []
    if do_batch:
        log(f"[batch] vmap over {batch_size} Rosenbrock n=2 problems")
        batch_rows = run_batch(batch_size, batch, repeats, args.budget, skip)
    hg_result = None
    hg_solvers = tuple(s for s in R.HYPERGRAD if s in wanted_solvers)
    if "hypergrad" in sections and hg_solvers:
        from . import hypergrad

        log("[hypergrad] jax.grad through an L-BFGS solve (per-feature regularised logistic regression)")
        hg_skip = {"jaxmin": skip["jaxmin"]} if "jaxmin" in skip else {}
        hg_result = hypergrad.run(hg_repeats, skip=hg_skip, log=log, solvers=hg_solvers)
    sqp_result = None
    if "sqp" in sections:
        from . import sqp

        log("[sqp] jaxmin SQP against SciPy SLSQP and trust-constr on the Hock-Schittkowski problems")
        sqp_result = sqp.run(repeats, skip={"jaxmin": skip["jaxmin"]} if "jaxmin" in skip else {}, log=log)
    bounds_result = None
    if "bounds" in sections:
        from . import bounds

        log("[bounds] L-BFGS-B: jaxmin LBFGS(bounds=...) vs SciPy L-BFGS-B and JAXopt LBFGSB")
        bounds_result = bounds.run(3 if args.quick else 5, log=log, quick=args.quick,
                                   solvers=tuple(s for s in bounds.SOLVERS if s in wanted_solvers))
    scaling_result = None
    if "scaling" in sections:
        from . import scaling

        scaling_result = scaling.run(args.quick, log, [s for s in scaling.LABELS if s in wanted_solvers])
    elapsed = time.perf_counter() - t_start

    md = render(
        problem_rows, batch_rows, command, repeats, batch_size, elapsed, descriptions,
        newton_rows=newton_rows, newton_repeats=newton_repeats, newton_budget=args.newton_budget,
        newton_elapsed=t_newton, png=os.path.basename(out) + "_newton.png", hypergrad=hg_result,
        bounds=bounds_result, sqp=sqp_result,
    )
    if scaling_result is not None:
        md += scaling.markdown(scaling_result)
    print(md)
    with open(out + ".md", "w") as fh:
        fh.write(md)
    written = [out + ".md"]
    for rows, batch_part, path, title in (
        (problem_rows, batch_rows, out + ".png", None),
        (newton_rows, [], out + "_newton.png",
         "Newton-CG section: steady-state solve time (hatched: did not reach ‖g‖∞ ≤ 1e-6)"),
    ):
        if not (rows or batch_part):
            continue
        try:
            report.plot(rows, batch_part, path, **({"title": title} if title else {}))
            written.append(path)
        except Exception as e:  # noqa: BLE001
            log(f"plot failed: {type(e).__name__}: {e}")
    log(f"wrote {', '.join(written)} in {elapsed:.0f}s")
    return 0


def render(
    problem_rows, batch_rows, command, repeats, batch_size, elapsed, descriptions,
    newton_rows=(), newton_repeats=None, newton_budget=None, newton_elapsed=None, png=None,
    hypergrad=None, bounds=None, sqp=None,
) -> str:
    classic = bool(problem_rows or newton_rows or batch_rows)
    parts = [
        "# jaxmin benchmark results\n",
        report.machine_info(command),
        (f"- steady repeats: {repeats} (round-robin interleaved)" if classic else "- steady repeats: –")
        + (f"; Newton-CG section: {newton_repeats}" if newton_rows else "")
        + (f"; hypergrad section: {hypergrad.repeats}" if hypergrad is not None else "")
        + f"; total wall time {elapsed:.0f} s"
        + (f" (Newton-CG section {newton_elapsed:.0f} s)" if newton_rows else "")
        + (f" (hypergrad section {hypergrad.elapsed:.0f} s)" if hypergrad is not None else "")
        + "\n",
    ]
    if classic:
        parts.append(
            "\nAll solves in float64, target ‖∇f‖∞ ≤ 1e-6, max 10000 iterations (L-BFGS: history 10). "
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
    if problem_rows or batch_rows:
        parts.append(
            "\nOptimistix rtol = atol per problem (calibrated, see README): "
            + ", ".join(f"{n}: {R.OPTX_TOL.get(n, R.OPTX_TOL_DEFAULT):g}" for n in P.BUILDERS)
            + f" (batch: {R.OPTX_TOL_BATCH:g}); JAXopt tol = {R.JAXOPT_TOL:g} on ‖g‖₂.\n"
        )
    if problem_rows or newton_rows:
        parts.append("\n## Single problems\n\n")
        parts.extend(f"- `{n}`: {d}\n" for n, d in descriptions.items())
        parts.append("\n")
    if problem_rows:
        parts.append(report.problem_table([r for rows in problem_rows for r in rows]))
    if newton_rows:
        xtols = ", ".join(f"{n}: {R.SCIPY_NCG_XTOL.get(n, R.SCIPY_NCG_XTOL_DEFAULT):g}" for n in descriptions)
        parts.append("\n## Newton-CG\n\n")
        parts.append(
            "jaxmin `NewtonCG(gtol=1e-6)` (default truncated-CG linear solver and line search), "
            "called directly and inside `jax.jit`, against SciPy `minimize(method=\"Newton-CG\")` "
            "and `minimize(method=\"trust-ncg\")`, both with `jac=True` (jitted value_and_grad) and "
            "`hessp` (jitted forward-over-reverse HVP), float64 NumPy in and out. Same problems, starts "
            "and target ‖∇f‖∞ ≤ 1e-6 as above. SciPy Newton-CG has no gradient test, only "
            f"`xtol` (1-norm of the step ≤ n·xtol), calibrated per problem as the loosest of 1e-5…1e-10 "
            f"reaching the target from both starts ({xtols}); trust-ncg `gtol` = "
            f"{R.SCIPY_TRUST_NCG_GTOL:g} on ‖g‖₂ (implies the ∞-norm target); both `maxiter` = "
            f"{R.MAXITER}. *× {report._label(R.NEWTON_REFERENCE)}* = steady / SciPy Newton-CG's steady. "
            "evals = value+gradient evaluations (SciPy: `nfev`), HVPs = Hessian-vector products "
            "(SciPy: `nhev`; trust-ncg's `nhev` is one more than the real count, see README). "
            f"Steady = median of {newton_repeats} interleaved calls, at most {newton_budget:g} s per "
            f"solver and problem (fewer: `(n=…)`); a SciPy solve over {R.NEWTON_SOLVE_LIMIT_S:g} s "
            "is aborted (\"skipped: over budget\"). *jaxmin floor* = evals × t_eval + HVPs × t_hvp "
            "(steady start), each measured in a jitted fori_loop.\n\n"
        )
        summary = report.newton_summary(newton_rows)
        if summary:
            parts.append("Targets (steady ≤ 0.1× SciPy Newton-CG on every problem; evals + HVPs ≤ "
                         "SciPy Newton-CG's, median over problems):\n\n" + summary + "\n")
        parts.append(report.newton_table([r for rows in newton_rows for r in rows]))
        if png:
            parts.append(f"\nChart: `{png}`.\n")
    if batch_rows:
        parts.append(f"\n## Batch: jax.vmap over {batch_size} Rosenbrock n=2 problems\n\n")
        parts.append(
            "Starts (-1.2, 1) + 0.1·N(0, I) (seed 2024; steady: seed 2025). SciPy solves the "
            "problems one after the other in a Python loop. iters/evals are per problem.\n\n"
        )
        parts.append(report.batch_table(batch_rows))
    if hypergrad is not None:
        from . import hypergrad as H

        parts.append(H.markdown(hypergrad))
    if bounds is not None:
        from . import bounds as B

        parts.append(B.markdown(bounds))
    if sqp is not None:
        from . import sqp as S

        parts.append(S.markdown(sqp))
    return "".join(parts)


if __name__ == "__main__":
    sys.exit(main())
