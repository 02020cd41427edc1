"""jaxmin's own `jit` of a solve (`minimize`, `least_squares`): the problem split into
traced arrays and static structure, and the compiled program chosen by problem size.

`compiled(body)` wraps `body(static, dynamic, max_steps)`; `run(program, problem,
options, max_steps)` splits `problem` (any pytree: functions, `x0`, `args`, solver),
calls the program and returns its result, and `merge(static, dynamic)` gives `body`
the problem back. Floats are traced, so a new value of `x0`, `args` or a
hyperparameter compiles nothing and can be differentiated; ints, bools and other
objects are structure (a new value compiles anew).
"""

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._captured import referenced_arrays

try:  # JAX's trace stack: which transformations the call sits in
    from jax._src.core import EvalTrace as _EvalTrace
    from jax._src.core import trace_ctx as _trace_ctx
    from jax._src.interpreters.ad import JVPTrace as _JVPTrace
    from jax._src.interpreters.ad import JVPTracer as _JVPTracer
    from jax._src.interpreters.batching import BatchTrace as _BatchTrace
    from jax._src.interpreters.batching import BatchTracer as _BatchTracer

    _EAGER = (_JVPTrace, _BatchTrace)
except ImportError:
    _EAGER = None

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
    where the solve is compiled as a program of its own (`_compiled_on_its_own`) and is
    not a batch of solves; `tiny` for at most `TINY_PROBLEM` unknowns and `TINY_DATA`
    numbers.

    A batch (an eager `vmap` over `x0` or the problem's arrays) compiles with the
    default options, as under `jit`: its members then equal their own jitted solves,
    and a warm start under `vmap` resumes exactly (with the small-problem options it
    differed from the uninterrupted batch in the last bits)."""
    if jax.default_backend() != "cpu" or not _compiled_on_its_own():
        return program.default
    size = sum(_member_size(leaf) for leaf in jax.tree.leaves(x0))
    if size > SMALL_PROBLEM or any(_batched(leaf) for leaf in [*jax.tree.leaves(x0), *dynamic]):
        return program.default
    held = referenced_arrays([leaf for leaf in static_leaves if callable(leaf)])
    data = sum(_member_size(leaf) for leaf in [*dynamic, *held] if leaf is not None)
    if data > SMALL_DATA:
        return program.default
    return program.tiny if size <= TINY_PROBLEM and data <= TINY_DATA else program.small


def _compiled_on_its_own() -> bool:
    """Whether a `jit` called here is compiled as a top-level program, which takes
    compiler options: outside any trace, or inside eager `jax.jvp`, `jax.jacfwd` and
    `jax.vmap` alone (each re-binds the jitted solve, transformed, one level up;
    `jacfwd` is a `vmap` of `jvp` over the tangents). Under a staging trace (the
    caller's `jit`, `grad` and `jacrev`'s linearisation, a `lax` loop) the solve becomes
    part of the caller's program, which takes none."""
    if _EAGER is None:  # (a JAX without them: the default compilation)
        return False
    trace = _trace_ctx.trace
    while isinstance(trace, _EAGER):
        trace = getattr(trace, "parent_trace", None)  # (a JAX without it: not on its own)
    return isinstance(trace, _EvalTrace)


def _member_size(leaf) -> int:
    """The numbers in `leaf` as the solve sees it (one member's, under `vmap`)."""
    return math.prod(jnp.shape(leaf))


def _batched(leaf) -> bool:
    """Whether `leaf` stands for a batch of values (an eager `vmap` over it): `jvp`'s
    primal, or `vmap`'s value, holds more numbers than the solve sees."""
    inner = leaf
    while _EAGER is not None and isinstance(inner, (_BatchTracer, _JVPTracer)):
        inner = inner.val if isinstance(inner, _BatchTracer) else inner.primal
    return inner is not leaf and _member_size(inner) > _member_size(leaf)
