"""First calls of jaxmin's solves: where the time goes (Python tracing, lowering to
StableHLO, XLA compilation), the compiled program's size, and the steady time.

``python -m benchmarks.first_calls`` prints one row per case; ``--cache DIR`` turns on
JAX's persistent compilation cache in ``DIR`` (run it twice: the second process reads
the programs the first wrote). Each case is a fresh problem (new functions), so every
row pays its own trace and compile. The split comes from JAX's own monitoring events
(``/jax/core/compile/*``). Absolute times
drift with the machine's load: compare rows of one run.
"""

import argparse
import collections
import time

import jax
import jax.numpy as jnp
import numpy as np

_EVENTS = collections.defaultdict(float)
_PHASES = {"trace": "jaxpr_trace_duration", "lower": "jaxpr_to_mlir_module_duration",
           "compile": "backend_compile_duration"}


def _listen(name, secs, **_):
    _EVENTS[name.rsplit("/", 1)[-1]] += secs


def _cases():
    import jaxmin as jm

    def rosenbrock(x):
        return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    def hs071(x):
        return x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2]

    def eq071(x):
        return jnp.stack([x @ x - 40.0])

    def ineq071(x):
        return jnp.stack([jnp.prod(x) - 25.0])

    def scaled_rosenbrock(x, a):
        return jnp.sum(a * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    def linear(x, c, r):
        return c @ x

    def disk(x, c, r):
        return jnp.stack([r**2 - x @ x])

    def nearest_on_disk(r):  # min c.x, |x| <= r: x* = -r c / |c|
        return jm.minimize(linear, jnp.array([0.1, -0.1]), jm.SQP(), args=(jnp.array([3.0, -4.0]), r),
                           ineq=disk).x

    x71 = jnp.array([1.0, 5.0, 5.0, 1.0])
    return {
        "SQP HS71 (n=4, eq, ineq, bounds)": lambda: jm.minimize(hs071, x71, jm.SQP(), eq=eq071, ineq=ineq071,
                                                                bounds=(1.0, 5.0)),
        "SQP Rosenbrock n=4 (bounds)": lambda: jm.minimize(rosenbrock, jnp.zeros(4), jm.SQP(), bounds=(-1.0, 0.5)),
        "L-BFGS-B Rosenbrock n=10": lambda: jm.minimize(rosenbrock, jnp.zeros(10), jm.LBFGS(), bounds=(-1.0, 0.5)),
        "LBFGS Rosenbrock n=10": lambda: jm.minimize(rosenbrock, jnp.zeros(10), jm.LBFGS()),
        "NewtonCG Rosenbrock n=10": lambda: jm.minimize(rosenbrock, jnp.zeros(10), jm.NewtonCG()),
        "LBFGS Rosenbrock n=1000": lambda: jm.minimize(rosenbrock, jnp.zeros(1000), jm.LBFGS()),
        "SQP disk n=2, jax.jacfwd of x* w.r.t. r": lambda: jax.jacfwd(nearest_on_disk)(2.0),
        "LBFGS Rosenbrock n=10, jax.jacfwd w.r.t. its scale": lambda: jax.jacfwd(
            lambda a: jm.minimize(scaled_rosenbrock, jnp.zeros(10), jm.LBFGS(), args=(a,)).x)(100.0),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", help="persistent compilation cache directory")
    parser.add_argument("--repeats", type=int, default=20, help="calls timed for the steady time")
    opts = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    if opts.cache:
        jax.config.update("jax_compilation_cache_dir", opts.cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.monitoring.register_event_duration_secs_listener(_listen)
    print("| case | first call | trace | lower | XLA compile | steady |\n|---|---:|---:|---:|---:|---:|")
    for name, solve in _cases().items():
        _EVENTS.clear()
        start = time.perf_counter()
        jax.block_until_ready(solve())
        first = time.perf_counter() - start
        times = []
        for _ in range(opts.repeats):
            start = time.perf_counter()
            jax.block_until_ready(solve())
            times.append(time.perf_counter() - start)
        phases = " | ".join(f"{_EVENTS[key]:.2f} s" for key in _PHASES.values())
        print(f"| {name} | {first:.2f} s | {phases} | {np.median(times) * 1e3:.2f} ms |", flush=True)


if __name__ == "__main__":
    main()
