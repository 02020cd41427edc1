"""Calibrate the peers' own stopping rules onto the common target ‖∇f‖∞ ≤ 1e-6.

    python -m benchmarks.calibrate optx [PROBLEM ...]      # runners.OPTX_TOL, OPTX_TOL_BATCH
    python -m benchmarks.calibrate newton [--full] [PROBLEM ...]   # newton.SCIPY_NCG_XTOL
    python -m benchmarks.calibrate hypergrad                # hypergrad.OPTX_TOL

Optimistix's quasi-Newton solvers stop on a Cauchy criterion (small change of y
AND of f, relative rtol / absolute atol, max-norm), never on the gradient; SciPy's
Newton-CG stops when the 1-norm of the last step is at most ``n * xtol``. For each
problem this walks a ladder of tolerances from the loosest, runs the solver from
both the standard and the steady start, prints what each reached (‖g‖∞ recomputed
by the harness) and proposes the loosest value that meets the target from both
starts. The results are pasted into the constants named above: a deliberate,
per-problem, oracle tuning in the peers' favour. ``newton --full`` walks the whole
ladder and also reports the single xtol that works on every problem run.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys  # noqa: E402
import time  # noqa: E402
from typing import Callable  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from . import problems as P  # noqa: E402
from . import newton as N  # noqa: E402
from . import runners as R  # noqa: E402
from .suite import _gnorm_fn  # noqa: E402

OPTX_LADDER = (1e-6, 1e-8, 1e-10, 1e-12, 1e-14)
NEWTON_LADDER = (1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10)
HYPERGRAD_LADDER = (1e-6, 1e-7, 1e-8, 1e-9, 1e-10)


def walk(label: str, ladder, attempt: Callable, full: bool = False) -> tuple[float | None, list[float]]:
    """(loosest passing tolerance, every passing one if ``full``): ``attempt(tol)``
    returns (met the target, a line of what it reached)."""
    chosen, passing = None, []
    for tol in ladder:
        ok, line = attempt(tol)
        print(f"  {label:24s} tol {tol:.0e}: {line}{'  OK' if ok else ''}", flush=True)
        if ok:
            passing.append(tol)
            chosen = tol if chosen is None else chosen
            if not full:
                break
    return chosen, passing


def both_starts(prob: P.Problem, make: Callable) -> Callable:
    """``attempt(tol)`` for ``walk``: the runner ``make(prob, tol)`` from both starts."""
    check = _gnorm_fn(prob, batched=prob.x0.ndim == 2)

    def attempt(tol):
        runner, ok, cells = make(prob, tol), True, []
        for x0 in (prob.x0, prob.x0_steady):
            t0 = time.perf_counter()
            res = runner.result(jax.block_until_ready(runner(jnp.asarray(x0))))
            g = float(np.max(check(res.x)[1]))
            ok &= g <= P.GTOL
            hvps = "" if res.nhvp is None else f" hvps {res.nhvp:>6}"
            cells.append(f"its {np.max(res.iters):>5} evals {np.max(res.nfev):>5}{hvps} |g|inf {g:.1e} "
                         f"{time.perf_counter() - t0:6.2f}s")
        return ok, " | ".join(cells)

    return attempt


def optx(names: list[str]) -> dict:
    import optimistix as optx

    proposal = {n: walk(n, OPTX_LADDER, both_starts(P.get(n), R.make_optimistix))[0]
                for n in names or P.BUILDERS if n != "batch"}
    if not names or "batch" in names:
        for label, cls in (("LBFGS", optx.LBFGS), ("BFGS", optx.BFGS)):

            def make(p, tol, cls=cls):
                kw = {"history_length": P.HISTORY} if cls is optx.LBFGS else {}
                solver = cls(rtol=tol, atol=tol, **kw)
                return R._JittedRunner(label, R._optx_solve(p.make_fun(), solver), p.args, batched=True)

            proposal[f"batch {label}"] = walk(f"batch {label}", OPTX_LADDER, both_starts(P.batch_problem(1000), make))[0]
    return proposal


def newton(names: list[str], full: bool) -> dict:
    def make(p, xtol):
        runner = N.make_scipy_ncg(p, xtol)
        runner.limit_s = float("inf")
        return runner

    found = {n: walk(n, NEWTON_LADDER, both_starts(P.get(n), make), full) for n in names or P.BUILDERS}
    if full:
        common = [x for x in NEWTON_LADDER if all(x in p for _, p in found.values())]
        print(f"\nxtol values that work on every problem: {common}")
    return {n: v for n, (v, _) in found.items()}


def hypergrad() -> dict:
    from . import hypergrad as H

    d = H.make_data()
    grad_inner = jax.jit(jax.grad(H.inner))

    def attempt(tol):
        w = jax.jit(H._optx_forward(d.w0, tol))(d.t, d.train)[0]
        g = float(jnp.max(jnp.abs(grad_inner(w, d.t, *d.train))))
        return g <= P.GTOL, f"||grad_w||_inf = {g:.2e}"

    return {"hypergrad": walk("hypergrad optimistix", HYPERGRAD_LADDER, attempt)[0]}


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ("optx", "newton", "hypergrad"):
        sys.exit(__doc__)
    names = [a for a in argv[1:] if not a.startswith("--")]
    if argv[0] == "optx":
        proposal = optx(names)
    elif argv[0] == "newton":
        proposal = newton(names, "--full" in argv)
    else:
        proposal = hypergrad()
    print("\nloosest tolerance meeting ||g||_inf <= 1e-6 from both starts:")
    for k, v in proposal.items():
        print(f"  {k!r}: {v!r},")


if __name__ == "__main__":
    main(sys.argv[1:])
