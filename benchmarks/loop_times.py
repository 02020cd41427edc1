"""Where a compiled solve's time goes, loop by loop, from XLA's own record of its thunks.

``python -m benchmarks.loop_times`` (``--vmap N`` for a batch of N starts) runs each case
of ``benchmarks.kernels`` under JAX's profiler, which records every thunk XLA:CPU runs
(one event per fusion, copy, dot or library call, named after its HLO instruction), and
sums the events by the computation each instruction belongs to: the entry, each loop's
body and condition, each branch. It prints the loop tree of ``benchmarks.kernels`` with,
per computation, its trips per solve and its thunks' time per solve and per trip.

The profiler's own cost per event inflates every thunk alike: compare shares and ratios
within a run, not absolute times. Thunks of a body run as a graph (``benchmarks.kernels``)
may overlap on the thread pool's threads, so the shares can add up to more than the wall
time.
"""

import argparse
import collections
import glob
import gzip
import json
import tempfile

import jax

from .hlo import parse
from .kernels import _FREE, _NESTING, _ROLES, compiled_cases

# kernels: instructions that run a thunk of their own (not a loop, branch or call, whose
# events span those of what they run)
_NOT_KERNELS = set(_FREE) | set(_NESTING)


def thunk_events(fn, x, repeats: int) -> tuple[dict, dict]:
    """`(microseconds, calls)` per thunk name over `repeats` calls of the compiled `fn(x)`,
    from a trace of JAX's profiler."""
    jax.block_until_ready(fn(x))
    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder, create_perfetto_trace=True):
            for _ in range(repeats):
                jax.block_until_ready(fn(x))
        (path,) = glob.glob(f"{folder}/**/*.trace.json.gz", recursive=True)
        with gzip.open(path) as file:
            events = json.load(file)["traceEvents"]
    micros, calls = collections.Counter(), collections.Counter()
    for event in events:
        if event.get("ph") == "X":
            micros[event["name"]] += event.get("dur", 0)
            calls[event["name"]] += 1
    return micros, calls


def loop_times(hlo: str, micros: dict, calls: dict, repeats: int) -> list[str]:
    """One line per computation that runs kernels, indented by nesting as in
    `kernels.loop_tree`: its trips per solve, its kernels' time per solve (and share of
    all kernels' time) and per trip, and its kernel count. A loop that XLA compiled whole
    (a `call` of one function, `kernels.SMALL_LOOPS_FLAG`) records no kernels of its own:
    the call's time counts as a kernel of its caller."""
    program = parse(hlo)
    subtree: dict[str, set] = {}

    def names_below(name: str) -> set:
        # the kernel names of a computation and of everything it runs
        if name not in subtree:
            own = {ins.name for ins in program.computations[name] if ins.opcode not in _NOT_KERNELS}
            for ins in program.computations[name]:
                if ins.opcode in _NESTING:
                    for _, callee in ins.callees:
                        own |= names_below(callee)
            subtree[name] = own
        return subtree[name]

    def kernels(name: str) -> list[str]:
        return [ins.name for ins in program.computations[name]
                if ins.opcode not in _NOT_KERNELS
                or (ins.opcode == "call" and not any(calls[k] for _, c in ins.callees for k in names_below(c)))]

    total = sum(micros[k] for name in program.computations for k in kernels(name)) / repeats
    out = []

    def visit(name: str, role: str, depth: int) -> None:
        names = kernels(name)
        # (the count most of its kernels ran: one kernel may record two events a trip)
        counts = collections.Counter(calls[k] for k in names if calls[k])
        trips = counts.most_common(1)[0][0] / repeats if counts else 0.0
        spent = sum(micros[k] for k in names) / repeats
        per_trip = spent / trips if trips else 0.0
        out.append(f"{'  ' * depth}{role}: {trips:.0f} trips, {spent:.0f} µs a solve "
                   f"({spent / max(total, 1e-9):.0%}), {per_trip:.1f} µs a trip, {len(names)} kernels")
        for ins in program.computations[name]:
            if ins.opcode in _NESTING and ins.name not in names:
                for key, callee in ins.callees:
                    visit(callee, _ROLES[key], depth + 1)

    visit(program.entry, "entry", 0)
    if min((calls[k] for k in kernels(program.entry)), default=repeats) < repeats:
        out.append("(the profiler dropped events, so trips and times are short: trace fewer calls)")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vmap", type=int, default=None, metavar="N", help="a batch of N starts under vmap")
    parser.add_argument("--repeats", type=int, default=20, help="calls traced (and timed) per case")
    opts = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    for name, compiled, x0, steady in compiled_cases(opts.vmap, opts.repeats):
        micros, calls = thunk_events(compiled, x0, opts.repeats)
        batch = f", vmap over {opts.vmap}" if opts.vmap else ""
        print(f"{name}{batch}: steady {steady * 1e3:.3f} ms (without the profiler)")
        for line in loop_times(compiled.as_text(), micros, calls, opts.repeats):
            print("  " + line)


if __name__ == "__main__":
    main()
