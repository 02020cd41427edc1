"""Calibrate Optimistix's rtol/atol so that it reaches ||g||_inf <= 1e-6.

`python -m benchmarks.calibrate_optx [PROBLEM ...]`

Optimistix's quasi-Newton solvers stop on a Cauchy criterion (small change of y
AND of f, relative rtol / absolute atol, max-norm), never on the gradient.  For
each problem this tries rtol = atol = 1e-6, 1e-8, ..., 1e-14 from both the
standard and the steady start, prints what each reached, and proposes the loosest
value that meets the target from both starts.  The result is pasted into
``runners.OPTX_TOL`` (a deliberate, per-problem, oracle tuning in Optimistix's
favour).  The same is done for the batch benchmark (BFGS and LBFGS).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import dataclasses  # noqa: E402

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from . import problems as P  # noqa: E402
from . import runners as R  # noqa: E402
from .suite import _gnorm_fn  # noqa: E402

LADDER = [1e-6, 1e-8, 1e-10, 1e-12, 1e-14]


def calibrate(prob: P.Problem, make) -> float | None:
    check = _gnorm_fn(prob, batched=prob.x0.ndim == 2)
    chosen = None
    for tol in LADDER:
        runner = make(prob, tol)
        ok_all = True
        cells = []
        for x0 in (prob.x0, prob.x0_steady):
            res = runner.result(jax.block_until_ready(runner(jnp.asarray(x0))))
            _, g = check(res.x)
            g = float(np.max(g))
            ok_all &= g <= R.GTOL
            cells.append(f"its {np.max(res.iters):>5} evals {np.max(res.nfev):>5} |g|inf {g:.1e}")
        print(f"  {prob.name:24s} tol {tol:.0e}: " + " | ".join(cells) + ("  OK" if ok_all else ""), flush=True)
        if ok_all and chosen is None:
            chosen = tol
            break
    return chosen


def main(argv: list[str]) -> None:
    import optimistix as optx

    names = argv or list(P.BUILDERS)
    proposal = {}
    for name in names:
        if name == "batch":
            continue
        proposal[name] = calibrate(P.get(name), lambda p, tol: R.make_optimistix(p, tol))
    if not argv or "batch" in argv:
        base = P.get("rosenbrock-2")
        prob = dataclasses.replace(
            base,
            name="batch-rosenbrock-2x1000",
            x0=P.batch_starts(1000, P.BATCH_SEED),
            x0_steady=P.batch_starts(1000, P.BATCH_SEED_STEADY),
        )
        for label, cls in (("LBFGS", optx.LBFGS), ("BFGS", optx.BFGS)):

            def make(p, tol, cls=cls):
                kw = {"history_length": R.HISTORY} if cls is optx.LBFGS else {}
                solver = cls(rtol=tol, atol=tol, **kw)
                return R._JittedRunner(label, R._optx_solve(p.make_fun(), solver), p.args, batched=True)

            proposal[f"batch {label}"] = calibrate(prob, make)
    print("\nloosest tolerance meeting ||g||_inf <= 1e-6 from both starts:")
    for k, v in proposal.items():
        print(f"  {k!r}: {v!r},")


if __name__ == "__main__":
    main(sys.argv[1:])
