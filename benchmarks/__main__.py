"""`python -m benchmarks`: jaxmin against SciPy, Optax, Optimistix and JAXopt.

Runs every section of ``SECTIONS`` in turn (each a module with a ``SECTION``, see
``benchmarks/protocol.py``) and writes one Markdown report (and the sections'
charts). ``--only`` and ``--solvers`` mean the same for every section. See
benchmarks/README.md for the methodology.
"""

from __future__ import annotations

import os

# Single-threaded BLAS for SciPy/NumPy (the Makefile sets it too); must happen
# before numpy/scipy are imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import importlib  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

from . import report  # noqa: E402
from .protocol import Options, Section, log  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# Report order. Each name is a module of this package exposing ``SECTION``.
SECTIONS = ("lbfgs", "newton", "bfgs", "least_squares", "batch", "hypergrad", "bounds", "sqp", "scaling",
            "warm_start")


def load_sections() -> list[Section]:
    return [importlib.import_module(f".{name}", __package__).SECTION for name in SECTIONS]


def parse(sections: list[Section], argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: fewer and smaller problems, 3 repeats, batch of 100")
    p.add_argument(
        "--only", action="append", default=[], metavar="NAME",
        help="sections (by name) and/or problems (by name prefix) to run; repeatable or "
        "comma-separated. Naming sections runs only those; problem prefixes then narrow them "
        "(each section keeps the prefixes that match its problems). Problem prefixes alone run "
        "every section that has a matching problem, on those problems only. Sections: "
        + ", ".join(f"{s.name} ({', '.join(s.problems[:3])}{', …' if len(s.problems) > 3 else ''})"
                    for s in sections),
    )
    solvers = dict.fromkeys(n for s in sections for n in s.solvers)
    p.add_argument("--solvers", default="",
                   help="comma-separated subset of " + ", ".join(solvers)
                   + " (every section runs only these; a section left with none is not run)")
    p.add_argument("--repeats", type=int, default=None,
                   help="steady-state repeats of every section (default: each section's own, 3 with --quick)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds of steady timing per solver and problem before its further repeats are "
                   "dropped (default: each section's own)")
    p.add_argument("--batch-size", type=int, default=None, help="batch section: batch size (default 1000, quick 100)")
    p.add_argument("--out", default=None, help="output prefix (default benchmarks/results; "
                   "benchmarks/results_quick with --quick, benchmarks/results_partial with filters)")
    p.add_argument("--traceback", action="store_true", help="print tracebacks of solver errors")
    return p.parse_args(argv)


def plan(sections: list[Section], only: list[str]) -> list[tuple[Section, tuple[str, ...]]]:
    """(section, its problem prefixes) to run, from the --only tokens; see ``--help``."""
    tokens = [w.strip() for o in only for w in o.split(",") if w.strip()]
    by_name = {s.name: s for s in sections}
    named = [t for t in tokens if t in by_name]
    prefixes = [t for t in tokens if t not in by_name]
    pool = [by_name[t] for t in named] or sections

    def mine(s: Section) -> tuple[str, ...]:
        return tuple(w for w in prefixes if any(p.startswith(w) for p in s.problems))

    unknown = [w for w in prefixes if not any(w in mine(s) for s in pool)]
    if unknown:
        problems = sorted({p for s in pool for p in s.problems})
        sys.exit(f"--only: {unknown} name no section and no problem of {[s.name for s in pool]}; "
                 f"sections: {list(by_name)}; problems: {problems}")
    if named:
        return [(s, mine(s)) for s in pool]
    return [(s, mine(s)) for s in sections if not prefixes or mine(s)]


def _command(argv) -> str:
    command = "OPENBLAS_NUM_THREADS=" + os.environ["OPENBLAS_NUM_THREADS"] + " " + " ".join(
        shlex.quote(a) for a in [os.path.relpath(sys.executable), "-m", "benchmarks", *(argv or sys.argv[1:])]
    )
    return f"`make bench`, i.e. `{command}`" if os.environ.get("MAKELEVEL") else f"`{command}`"


def main(argv=None) -> int:
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*jaxopt.*")
    sections = load_sections()
    args = parse(sections, argv)
    wanted = [s.strip() for s in args.solvers.split(",") if s.strip()]
    known = {n for s in sections for n in s.solvers}
    if [s for s in wanted if s not in known]:
        sys.exit(f"unknown solver(s) {[s for s in wanted if s not in known]}; choose from {sorted(known)}")
    filtered = bool(args.only or args.solvers)
    out = args.out or os.path.join(HERE, "results_quick" if args.quick else ("results_partial" if filtered else "results"))
    base = Options(solvers=frozenset(wanted) if wanted else None, quick=args.quick, repeats=args.repeats,
                   budget=args.budget, batch_size=args.batch_size, out=out, traceback=args.traceback, log=log)

    t_start = time.perf_counter()
    parts, times = [], []
    for section, prefixes in plan(sections, args.only):
        options = dataclasses.replace(base, problems=prefixes)
        if not options.pick(section.solvers):
            log(f"[{section.name}] skipped: none of its solvers ({', '.join(section.solvers)}) selected")
            continue
        log(f"[{section.name}] ...")
        t0 = time.perf_counter()
        parts.append(section.markdown(section.run(options)))
        times.append(f"{section.name} {time.perf_counter() - t0:.0f} s")
    elapsed = time.perf_counter() - t_start

    md = "".join([
        "# jaxmin benchmark results\n\n",
        report.machine_info(_command(argv)),
        f"- wall time: {elapsed:.0f} s ({', '.join(times) or 'nothing run'})\n",
        *parts,
    ])
    print(md)
    with open(out + ".md", "w") as fh:
        fh.write(md)
    log(f"wrote {out}.md in {elapsed:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
