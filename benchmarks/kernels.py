"""Kernels per step: how many operations XLA:CPU runs per trip of each loop of a
compiled solve, jaxmin's and Optimistix's side by side.

``python -m benchmarks.kernels`` prints, for each case, the compiled program's loops as
a tree (a loop body, the loops nested in it, the branches of its conditionals) with the
number of operations each runs per trip (fusions, copies, dots, custom calls such as
LAPACK's; a `while` or `conditional` counts as one, plus what it runs), and the steady
time of the whole solve. On the CPU every such operation is one thunk of XLA's runtime,
and on small problems (or under ``vmap``, where every op touches the whole batch) the
time per step follows their count, not the arithmetic. Each line also gives the largest
buffer its thunks touch (nested loops included): XLA:CPU runs a thunk sequence in
program order only while every buffer is at most ``SEQUENTIAL_BYTES`` (or the sequence
is a chain, or has at most 8 thunks); above, it schedules the thunks as a dependency
graph, at a higher cost per thunk (``graph`` on the line; see
``benchmarks/README.md``, "Steady time of small problems"). ``--vmap N`` solves a batch of N
starts under ``jax.vmap`` instead of one; ``--threshold`` times solves on either side of
that threshold instead, and ``--threads`` times those in child processes with XLA's thread
pool at its default size (one thread per core), at one thread (``PJRT_NPROC=1``), the
process pinned to one core, and with XLA:CPU compiling loops of up to 1 MB a trip as one
function each (``SMALL_LOOPS_FLAG`` in ``XLA_FLAGS``). Counts come from
``jit(...).lower(...).compile().as_text()``; they are the same on every machine with the
same jax/jaxlib, while times drift with the load.
"""

import argparse
import collections
import json
import math
import os
import re
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from .hlo import parse
from .problems import hs_module

# instructions that run no kernel of their own
_FREE = {"parameter", "get-tuple-element", "tuple", "constant", "bitcast"}
# instructions that run other computations
_NESTING = ("while", "conditional", "call")
# what the tree calls the computations a `while`, `conditional` or `call` runs
_ROLES = {"condition": "condition", "body": "body", "to_apply": "call", "branch_computations": "branch",
          "true_computation": "branch", "false_computation": "branch"}
# XLA:CPU's ThunkExecutor runs a sequence in order when no thunk touches a larger buffer
# (its `execute_sequential_buffer_threshold`)
SEQUENTIAL_BYTES = 512
_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4, "u32": 4,
          "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16}
_ARRAY = re.compile(r"^([a-z0-9]+)\[([0-9,]*)\]")


def buffer_bytes(shape: str) -> int:
    """The size of an array shape such as `f64[20,20]{1,0}`; 0 for a tuple or token."""
    array = _ARRAY.match(shape)
    if array is None or array.group(1) not in _BYTES:
        return 0
    return _BYTES[array.group(1)] * math.prod(int(d) for d in array.group(2).split(",") if d)


def loop_tree(hlo: str) -> list[str]:
    """One line per computation that runs kernels: its role, its kernel count per trip
    and their kinds, and the largest buffer they touch (`graph` above
    `SEQUENTIAL_BYTES`), indented by nesting (the entry first)."""
    program = parse(hlo)
    largest: dict[str, int] = {}

    def biggest(name: str) -> int:
        # a loop or branch thunk touches the buffers of what it runs
        if name not in largest:
            own = [buffer_bytes(ins.shape) for ins in program.computations[name]]
            nested = [biggest(callee) for ins in program.computations[name] if ins.opcode in _NESTING
                      for _, callee in ins.callees]
            largest[name] = max(own + nested, default=0)
        return largest[name]

    out = []

    def visit(name: str, role: str, depth: int) -> None:
        kinds = collections.Counter(ins.opcode for ins in program.computations[name] if ins.opcode not in _FREE)
        shown = ", ".join(f"{count} {kind}" for kind, count in kinds.most_common())
        size = biggest(name)
        mode = "graph" if size > SEQUENTIAL_BYTES and sum(kinds.values()) > 8 else "in order"
        out.append(f"{'  ' * depth}{role}: {sum(kinds.values())} ({shown}) [{mode}, buffers up to {size} B]")
        for ins in program.computations[name]:
            if ins.opcode in _NESTING:
                for key, callee in ins.callees:
                    visit(callee, _ROLES[key], depth + 1)

    visit(program.entry, "entry", 0)
    return out


# the problems: Rosenbrock from (-1.2, 1, ...), and HS4 with its bounds (the tests'). Rosenbrock
# chained, as in jaxmin's docstrings, not the benchmarks' extended form, which needs an even
# n: the threshold's BFGS pair is n = 8 and 9 (at n = 2 the two are the same function)
_HS4_START, _HS4_LOWER = (1.125, 0.125), (1.0, 0.0)  # (arrays made after x64 is set)


def _start(n: int):
    return jnp.asarray(np.resize([-1.2, 1.0], n))


def _rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _solvers():
    """`(jaxmin BFGS, LBFGS and L-BFGS-B with m pairs, Optimistix BFGS)`, each a function
    of the start returning `(x, steps)`."""
    import optimistix as optx

    import jaxmin as jm

    hs004 = hs_module("hs_bounds").hs004

    def jaxmin(solver, fn=_rosenbrock, **kw):
        return lambda x0: (lambda s: (s.x, s.num_steps))(jm.minimize(fn, x0, solver, max_steps=10000, **kw))

    def optx_bfgs(x0):
        solver = optx.BFGS(rtol=1e-8, atol=1e-8)
        sol = optx.minimise(lambda y, _: _rosenbrock(y), solver, x0, max_steps=10000, throw=False)
        return sol.value, sol.stats["num_steps"]

    bounds = (jnp.array(_HS4_LOWER), jnp.full(2, jnp.inf))
    lbfgsb = lambda m: jaxmin(jm.LBFGS(gtol=1e-6, history_size=m), hs004, bounds=bounds)
    return jaxmin(jm.BFGS(gtol=1e-6)), jaxmin(jm.LBFGS(gtol=1e-6)), lbfgsb, optx_bfgs


def _cases(batch: int | None):
    bfgs, lbfgs, lbfgsb, optx_bfgs = _solvers()
    cases = {
        "jaxmin BFGS, Rosenbrock n=2": (bfgs, _start(2)),
        "jaxmin LBFGS, Rosenbrock n=2": (lbfgs, _start(2)),
        "Optimistix BFGS, Rosenbrock n=2": (optx_bfgs, _start(2)),
        "jaxmin L-BFGS-B, HS4 (n=2, bounds)": (lbfgsb(10), jnp.array(_HS4_START)),
    }
    if batch:
        rng = np.random.default_rng(0)
        cases = {name: (jax.vmap(solve), x0 + 0.1 * jnp.asarray(rng.standard_normal((batch, x0.size))))
                 for name, (solve, x0) in cases.items()}
    return cases


def compiled_cases(batch: int | None, repeats: int):
    """`(name, compiled solve, start, steady seconds)` for each case (`_cases`), one at a
    time: compiled, called once, then timed (the median of `repeats` calls)."""
    for name, (solve, x0) in _cases(batch).items():
        compiled = jax.jit(solve).lower(x0).compile()
        jax.block_until_ready(compiled(x0))
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(compiled(x0))
            times.append(time.perf_counter() - start)
        yield name, compiled, x0, float(np.median(times))


def _threshold_cases():
    """Solves on either side of `SEQUENTIAL_BYTES` (float64): L-BFGS-B on HS4 with 4 and 5
    pairs (its `2m x 2m` matrices 512 and 800 bytes), BFGS on Rosenbrock n = 8 and 9
    (`H` 512 and 648 bytes), jaxmin's and Optimistix's."""
    bfgs, _, lbfgsb, optx_bfgs = _solvers()
    hs4 = jnp.array(_HS4_START)
    return {
        "L-BFGS-B HS4, history 4": (lbfgsb(4), hs4), "L-BFGS-B HS4, history 5": (lbfgsb(5), hs4),
        "jaxmin BFGS n=8": (bfgs, _start(8)), "jaxmin BFGS n=9": (bfgs, _start(9)),
        "Optimistix BFGS n=8": (optx_bfgs, _start(8)), "Optimistix BFGS n=9": (optx_bfgs, _start(9)),
    }


def threshold(repeats: int) -> dict[str, dict]:
    """Steady time (µs) and steps of `_threshold_cases`, interleaved, with the
    execution mode of each compiled program's outer loop body."""
    cases = {name: (jax.jit(solve).lower(x0).compile(), x0) for name, (solve, x0) in _threshold_cases().items()}
    steps = {name: int(call(x0)[1]) for name, (call, x0) in cases.items()}
    times = collections.defaultdict(list)
    for _ in range(repeats):
        for name, (call, x0) in cases.items():
            start = time.perf_counter()
            jax.block_until_ready(call(x0))
            times[name].append(time.perf_counter() - start)
    out = {}
    for name, (call, _) in cases.items():
        body = next((line for line in loop_tree(call.as_text()) if line.startswith("  body:")), None)
        # (none: the loop compiled whole, a call of one function; see SMALL_LOOPS_FLAG)
        out[name] = {"steps": steps[name], "steady_us": float(np.median(times[name]) * 1e6),
                     "body": "one function" if body is None else body.split("[")[1].rstrip("]")}
    return out


def _print_threshold(result: dict[str, dict]) -> None:
    for name, r in result.items():
        print(f"{name}: {r['steps']} steps, steady {r['steady_us']:.1f} us, "
              f"{r['steady_us'] / r['steps']:.2f} us a step; outer body {r['body']}")


# XLA's CPU client sizes its thread pool from this variable, read when a process first
# computes (default: the cores this process may use)
POOL_ENV = "PJRT_NPROC"


def _pin_to_one_core() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


# XLA:CPU compiles a `while` loop whose trip reads and writes fewer bytes than this
# backend option (default 1024; HloCostAnalysis of the body and condition) and calls no
# library routine (LAPACK) as one function, not as a sequence of kernels run one by one
SMALL_LOOPS_FLAG = "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1000000"


def threads(repeats: int, rounds: int = 3) -> None:
    """`threshold` in child processes: the pool at its default size, at one thread, the
    whole process pinned to one core (`taskset -c 0`), and the default pool with loops of
    up to 1 MB a trip compiled whole (`SMALL_LOOPS_FLAG` in `XLA_FLAGS`), in turn `rounds`
    times each; prints the medians over the rounds and their ratios to the default."""
    settings = {"default pool": ("", None, ""), f"{POOL_ENV}=1": ("1", None, ""),
                "one core": ("", _pin_to_one_core, ""), "small loops whole": ("", None, SMALL_LOOPS_FLAG)}
    runs = collections.defaultdict(list)
    for _ in range(rounds):
        for label, (pool, pin, flags) in settings.items():
            env = {k: v for k, v in os.environ.items() if k != POOL_ENV}
            if pool:
                env[POOL_ENV] = pool
            if flags:
                env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flags}".strip()
            child = subprocess.run(
                [sys.executable, "-m", "benchmarks.kernels", "--threshold", "--json", "--repeats", str(repeats)],
                env=env, preexec_fn=pin, capture_output=True, text=True, check=True)
            runs[label].append(json.loads(child.stdout.strip().splitlines()[-1]))
    labels = list(settings)
    print(f"| solve | outer body | {' | '.join(labels)} |")
    print("|---|---|" + "---:|" * len(labels))
    for name, r in runs[labels[0]][0].items():
        med = [float(np.median([run[name]["steady_us"] for run in runs[label]])) for label in labels]
        cells = [f"{med[0]:.0f} µs"] + [f"{m:.0f} µs ({m / med[0]:.2f}×)" for m in med[1:]]
        print(f"| {name} ({r['steps']} steps) | {r['body']} | {' | '.join(cells)} |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vmap", type=int, default=None, metavar="N", help="a batch of N starts under vmap")
    parser.add_argument("--repeats", type=int, default=50, help="calls timed for the steady time")
    parser.add_argument("--threshold", action="store_true",
                        help="time solves on either side of the 512-byte threshold instead")
    parser.add_argument("--threads", action="store_true",
                        help=f"time the --threshold solves with XLA's thread pool as it is, with {POOL_ENV}=1, "
                             "on one core, and with small loops compiled whole")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # (--threshold, for --threads)
    opts = parser.parse_args(argv)
    if opts.threads:
        threads(opts.repeats)
        return
    jax.config.update("jax_enable_x64", True)
    if opts.threshold:
        result = threshold(opts.repeats)
        if opts.json:
            print(json.dumps(result))
        else:
            _print_threshold(result)
        return
    for name, compiled, _, steady in compiled_cases(opts.vmap, opts.repeats):
        print(f"{name}{f', vmap over {opts.vmap}' if opts.vmap else ''}: steady {steady * 1e3:.3f} ms")
        print("\n".join("  " + line for line in loop_tree(compiled.as_text())), flush=True)


if __name__ == "__main__":
    main()
