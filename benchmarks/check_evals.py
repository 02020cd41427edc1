"""Cross-check every solver's evaluation count against a real call counter.

`python -m benchmarks.check_evals [PROBLEM ...]`

The benchmark reads evaluation counts from each solver's own state (jaxmin
``num_fun_evals``, SciPy ``nfev``, Optax: 1 + sum of ``num_linesearch_steps``,
Optimistix ``stats['num_steps']``, JAXopt ``num_fun_eval``).  This script wraps
the objective in a ``jax.debug.callback`` that increments a Python counter each
time the compiled code evaluates it (value-only and value+gradient evaluations
alike: the callback sits in the forward pass), runs each solver once from the
standard start, and prints both numbers.  It is not part of the timed run: the
callback would perturb the timings.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import dataclasses  # noqa: E402
import sys  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

from . import problems as P  # noqa: E402
from . import runners as R  # noqa: E402


def counted(problem: P.Problem):
    count = [0]
    base = problem.base

    def bump(_):
        count[0] += 1

    def fun(x, *args):
        jax.debug.callback(bump, x[0])
        return base(x, *args)

    return dataclasses.replace(problem, base=fun), count


def main(argv: list[str]) -> None:
    ok, why = R.jaxmin_available()
    names = argv or list(P.BUILDERS)
    print(f"{'problem':18s} {'solver':12s} {'reported':>9s} {'counted':>8s}")
    for name in names:
        prob, count = counted(P.get(name))
        for solver, make in R.SINGLE.items():
            if solver == "jaxmin" and not ok:
                print(f"{name:18s} {solver:12s} skipped ({why})")
                continue
            try:
                runner = make(prob)
                count[0] = 0
                raw = jax.block_until_ready(runner(jnp.asarray(prob.x0)))
                jax.effects_barrier()
                res = runner.result(raw)
                mark = "" if res.nfev == count[0] else "  <-- differs"
                print(f"{name:18s} {solver:12s} {res.nfev:>9d} {count[0]:>8d}{mark}", flush=True)
            except Exception as e:  # noqa: BLE001
                print(f"{name:18s} {solver:12s} error: {type(e).__name__}: {e}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
