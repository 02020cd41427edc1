"""Calibrate SciPy Newton-CG's ``xtol`` so that it reaches ||g||_inf <= 1e-6.

`python -m benchmarks.calibrate_newton [PROBLEM ...]`

SciPy's Newton-CG has no gradient-based stopping test: it stops when the 1-norm of
the last step is at most ``n * xtol``.  For each problem this tries xtol = 1e-5
(SciPy's default), 1e-6, ..., 1e-10 from both the standard and the steady start,
prints what each reached (‖g‖∞ recomputed by the harness), and proposes the
loosest value that meets the target from both starts.  The result is pasted into
``runners.SCIPY_NCG_XTOL`` (a per-problem, oracle tuning in SciPy's favour, as for
Optimistix).  It also reports the smallest single xtol that works on every problem
(of those run).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)


from . import problems as P  # noqa: E402
from . import runners as R  # noqa: E402
from .suite import _gnorm_fn  # noqa: E402

LADDER = [1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10]


def calibrate(prob: P.Problem, full: bool = False) -> tuple[float | None, list[float]]:
    """Loosest passing xtol; with ``full`` also the list of all passing values."""
    check = _gnorm_fn(prob, batched=False)
    chosen, passing = None, []
    for xtol in LADDER:
        runner = R.make_scipy_ncg(prob, xtol)
        runner.limit_s = float("inf")
        ok_all = True
        cells = []
        for x0 in (prob.x0, prob.x0_steady):
            t0 = time.perf_counter()
            res = runner.result(runner(x0))
            t = time.perf_counter() - t0
            _, g = check(res.x)
            g = float(g)
            ok_all &= g <= R.GTOL
            flag = "" if res.ok else " (" + res.note.split(".")[0][:30] + ")"
            cells.append(f"its {res.iters:>5} evals {res.nfev:>5} hvps {res.nhvp:>6} |g|inf {g:.1e} {t:6.2f}s{flag}")
        print(f"  {prob.name:18s} xtol {xtol:.0e}: " + " | ".join(cells) + ("  OK" if ok_all else ""), flush=True)
        if ok_all:
            passing.append(xtol)
            if chosen is None:
                chosen = xtol
                if not full:
                    break
    return chosen, passing


def main(argv: list[str]) -> None:
    full = "--full" in argv
    names = [a for a in argv if not a.startswith("--")] or list(P.BUILDERS)
    proposal = {}
    for name in names:
        proposal[name] = calibrate(P.get(name), full)
    print("\nloosest xtol meeting ||g||_inf <= 1e-6 from both starts:")
    for k, (v, _) in proposal.items():
        print(f"  {k!r}: {v!r},")
    if full:
        common = [x for x in LADDER if all(x in p for _, p in proposal.values())]
        print(f"\nxtol values that work on every problem: {common}")


if __name__ == "__main__":
    main(sys.argv[1:])
