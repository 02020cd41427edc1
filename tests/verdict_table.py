"""The MGH table's verdicts in float32 with a solver's default settings, run in a
fresh process (`python verdict_table.py LBFGS`), the problems of one dimension sharing
one compiled solve (`problems.shared`): 8 compilations kept out of the test worker.
Prints one JSON object `{problem: [reached, success, status]}`, graded to float32
accuracy: |f - f*| <= 1e-5 max(1, |f*|) for f* or a published local optimum."""

import json
import os
import subprocess
import sys


def grade(problem, f) -> bool:
    return any(abs(f - t) <= 1e-5 * max(1.0, abs(t)) for t in (problem.f_star, *problem.f_alternatives))


def verdicts(solver_name: str) -> dict:
    """Run this file for `solver_name` in a fresh process and parse its output."""
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, os.path.join(here, "verdict_table.py"), solver_name],
                         capture_output=True, text=True, cwd=here, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _main(solver_name: str) -> None:
    import jax.numpy as jnp

    import jaxmin as jm
    from problems import PROBLEMS, shared

    solver = {"LBFGS": jm.LBFGS(), "NewtonCG": jm.NewtonCG(), "BFGS": jm.BFGS()}[solver_name]
    table = {}
    for p in PROBLEMS:
        fn, args = shared(p)
        sol = jm.minimize(fn, jnp.asarray(p.x0, jnp.float32), solver, args=args, max_steps=1000)
        table[p.name] = [grade(p, float(sol.fun)), bool(sol.success), jm.Status(int(sol.status)).name]
    print(json.dumps(table))


if __name__ == "__main__":
    _main(sys.argv[1])
