"""jaxmin's own `jit` of a solve (`minimize`, `least_squares`): the problem split into
traced arrays and static structure, and the compiled program chosen by problem size.

`compiled(body)` wraps `body(static, dynamic, max_steps)`; `run(program, problem,
options, max_steps)` splits `problem` (any pytree: functions, `x0`, `args`, solver),
calls the program and returns its result, and `merge(static, dynamic)` gives `body`
the problem back. Floats are traced, so a new value of `x0`, `args` or a
hyperparameter compiles nothing and can be differentiated; ints, bools and other
objects are structure (a new value compiles anew).
"""

from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from ._captured import referenced_arrays

# At most this many unknowns, and this many numbers in all the problem's arrays (x0,
# args, bounds, hyperparameters, and what its functions hold), jaxmin's own jit compiles without XLA:CPU's fusion
# emitters: the first call (mostly XLA compilation of many small kernels) takes 20-50%
# less time and the steady time is within noise; above, the emitters' kernels run
# faster (by 7-90% at n = 1000-10^4; by 19% on a logistic regression whose data is
# 5000 x 200, 10% at 1000 x 20). The two may round reductions differently: `x` can
# differ in the last bit (steps and counts were equal on every HS problem).
# Measurements: benchmarks/README.md, "First calls: where the time goes".
SMALL_PROBLEM = 256
SMALL_DATA = 65536
_SMALL_PROBLEM_OPTIONS = {"xla_cpu_use_fusion_emitters": False}

# At most this many unknowns and numbers in the problem's arrays, the small-problem
# program is also compiled without LLVM's optimisations (XLA's optimisation level 0):
# LLVM's passes and instruction selection are most of XLA:CPU's compile time, so the
# first call of a tiny problem (Hock-Schittkowski's) takes about half the time, while a
# solve of it, a few hundred microseconds, takes 1.1-1.6x as long (at n = 32, 2-4x).
# A one-off solve wins; a direct call repeated thousands of times loses, and should be
# jitted, which compiles it with the default options. The kernels go into one LLVM
# module: split into XLA's default 32, the same step compiled at level 0 into two
# programs (a solve's and the warm start that resumes it) rounded differently in the
# last bits, so resuming was no longer exact; in one module it is, and compiles faster.
# Measurements: benchmarks/README.md, "First calls: where the time goes".
TINY_PROBLEM = 16
TINY_DATA = 1024
_TINY_PROBLEM_OPTIONS = {**_SMALL_PROBLEM_OPTIONS, "xla_backend_optimization_level": 0,
                         "xla_cpu_parallel_codegen_split_count": 1}


class Program(NamedTuple):
    """A solve body jitted three times (its first argument static): `default`, `small`,
    compiled with `_SMALL_PROBLEM_OPTIONS`, and `tiny`, with `_TINY_PROBLEM_OPTIONS`."""

    default: Callable
    small: Callable
    tiny: Callable


class Static(NamedTuple):
    """What the program is compiled for: the problem's structure, its non-array
    leaves, and the options (`throw`, `verbose`, ...) the body reads."""

    treedef: Any
    leaves: tuple
    options: tuple


def compiled(body: Callable) -> Program:
    """`body(static: Static, dynamic: list, max_steps)` as a `Program`."""
    return Program(jax.jit(body, static_argnums=0),
                   jax.jit(body, static_argnums=0, compiler_options=_SMALL_PROBLEM_OPTIONS),
                   jax.jit(body, static_argnums=0, compiler_options=_TINY_PROBLEM_OPTIONS))


def call_method(module, name: str, *args):
    """`module.name(*args)` without Equinox's bound-method wrapper, which builds a module
    on every attribute access (~60 us, a sixth of a small solve's direct call)."""
    return getattr(type(module), name)(module, *args)


def is_dynamic(leaf) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic, float, complex))


def is_traced(problem) -> bool:
    """Whether the call sits inside a trace (`jit`, `vmap`, `grad`) of the caller's."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(problem))


def run(program: Program, problem, x0, options: tuple, max_steps: int):
    """`program` on `problem` (`x0` sizes it), split into static and dynamic parts."""
    leaves, treedef = jax.tree.flatten(problem)
    dynamic = [leaf if is_dynamic(leaf) else None for leaf in leaves]
    static = Static(treedef, tuple(None if is_dynamic(leaf) else leaf for leaf in leaves), options)
    return _for_size(program, x0, dynamic, static.leaves)(static, dynamic, np.int32(max_steps))


def merge(static: Static, dynamic: list):
    """The problem `run` split: its pytree with the traced leaves back in place."""
    leaves = [d if s is None else s for d, s in zip(dynamic, static.leaves)]
    return jax.tree.unflatten(static.treedef, leaves)


def _for_size(program: Program, x0, dynamic: list, static_leaves: tuple) -> Callable:
    """`small` for at most `SMALL_PROBLEM` unknowns and `SMALL_DATA` numbers in the
    problem's arrays (`dynamic`, and the arrays its functions capture or name as
    globals: such data is compiled into the program as constants) on the CPU backend,
    called outside any trace (JAX takes compiler options only on a top-level `jit`;
    under `jit`, `vmap` or `grad` the solve is part of the caller's program); `tiny` for
    at most `TINY_PROBLEM` unknowns and `TINY_DATA` numbers."""
    size = sum(int(np.size(leaf)) for leaf in jax.tree.leaves(x0))
    if size > SMALL_PROBLEM or jax.default_backend() != "cpu" or not _outside_traces():
        return program.default
    held = referenced_arrays([leaf for leaf in static_leaves if callable(leaf)])
    data = sum(int(np.size(leaf)) for leaf in [*dynamic, *held] if leaf is not None)
    if data > SMALL_DATA:
        return program.default
    return program.tiny if size <= TINY_PROBLEM and data <= TINY_DATA else program.small


def _outside_traces() -> bool:
    try:
        from jax._src.core import trace_state_clean
    except ImportError:  # (a JAX without it: the default compilation)
        return False
    return trace_state_clean()
