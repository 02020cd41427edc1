"""Kernels per step: how many operations XLA:CPU runs per trip of each loop of a
compiled solve, jaxmin's and Optimistix's side by side.

``python -m benchmarks.kernels`` prints, for each case, the compiled program's loops as
a tree (a loop body, the loops nested in it, the branches of its conditionals) with the
number of operations each runs per trip (fusions, copies, dots, custom calls such as
LAPACK's; a `while` or `conditional` counts as one, plus what it runs), and the steady
time of the whole solve. On the CPU every such operation is one thunk of XLA's runtime,
and on small problems (or under ``vmap``, where every op touches the whole batch) the
time per step follows their count, not the arithmetic. ``--vmap N`` solves a batch of N
starts under ``jax.vmap`` instead of one. Counts come from
``jit(...).lower(...).compile().as_text()``; they are the same on every machine with the
same jax/jaxlib, while times drift with the load.
"""

import argparse
import collections
import time

import jax
import jax.numpy as jnp
import numpy as np

from .hlo import parse

# instructions that run no kernel of their own
_FREE = {"parameter", "get-tuple-element", "tuple", "constant", "bitcast"}
# what the tree calls the computations a `while`, `conditional` or `call` runs
_ROLES = {"condition": "condition", "body": "body", "to_apply": "call", "branch_computations": "branch",
          "true_computation": "branch", "false_computation": "branch"}


def loop_tree(hlo: str) -> list[str]:
    """One line per computation that runs kernels: its role, its kernel count per trip
    and their kinds, indented by nesting (the entry first)."""
    program = parse(hlo)
    out = []

    def visit(name: str, role: str, depth: int) -> None:
        kinds = collections.Counter(ins.opcode for ins in program.computations[name] if ins.opcode not in _FREE)
        shown = ", ".join(f"{count} {kind}" for kind, count in kinds.most_common())
        out.append(f"{'  ' * depth}{role}: {sum(kinds.values())} ({shown})")
        for ins in program.computations[name]:
            if ins.opcode in ("while", "conditional", "call"):
                for key, callee in ins.callees:
                    visit(callee, _ROLES[key], depth + 1)

    visit(program.entry, "entry", 0)
    return out


def _cases(batch: int | None):
    import optimistix as optx

    import jaxmin as jm

    def rosenbrock(x):
        return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    def hs004(x):
        return (x[0] + 1.0) ** 3 / 3.0 + x[1]

    def optx_bfgs(x0):
        solver = optx.BFGS(rtol=1e-8, atol=1e-8)
        return optx.minimise(lambda y, _: rosenbrock(y), solver, x0, max_steps=10000, throw=False).value

    def jaxmin(solver, fn=rosenbrock, **kw):
        return lambda x0: jm.minimize(fn, x0, solver, max_steps=10000, **kw).x

    start = jnp.array([-1.2, 1.0])
    lower, upper = jnp.array([1.0, 0.0]), jnp.array([jnp.inf, jnp.inf])
    cases = {
        "jaxmin BFGS, Rosenbrock n=2": (jaxmin(jm.BFGS(gtol=1e-6)), start),
        "jaxmin LBFGS, Rosenbrock n=2": (jaxmin(jm.LBFGS(gtol=1e-6)), start),
        "Optimistix BFGS, Rosenbrock n=2": (optx_bfgs, start),
        "jaxmin L-BFGS-B, HS4 (n=2, bounds)": (jaxmin(jm.LBFGS(gtol=1e-6), hs004, bounds=(lower, upper)),
                                              jnp.array([1.125, 0.125])),
    }
    if batch:
        rng = np.random.default_rng(0)
        cases = {name: (jax.vmap(solve), x0 + 0.1 * jnp.asarray(rng.standard_normal((batch, x0.size))))
                 for name, (solve, x0) in cases.items()}
    return cases


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vmap", type=int, default=None, metavar="N", help="a batch of N starts under vmap")
    parser.add_argument("--repeats", type=int, default=50, help="calls timed for the steady time")
    opts = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    for name, (solve, x0) in _cases(opts.vmap).items():
        compiled = jax.jit(solve).lower(x0).compile()
        jax.block_until_ready(compiled(x0))
        times = []
        for _ in range(opts.repeats):
            start = time.perf_counter()
            jax.block_until_ready(compiled(x0))
            times.append(time.perf_counter() - start)
        print(f"{name}{f', vmap over {opts.vmap}' if opts.vmap else ''}: steady {np.median(times) * 1e3:.3f} ms")
        print("\n".join("  " + line for line in loop_tree(compiled.as_text())), flush=True)


if __name__ == "__main__":
    main()
