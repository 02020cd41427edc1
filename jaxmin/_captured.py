"""What a problem holds: the arrays and numbers among a pytree's leaves and those its
functions capture (closure cells, defaults, `functools.partial` arguments, bound
objects, wrapped functions). `_warm.fingerprint` digests them; `_compiled` counts their
size when it picks the compile options of a direct call."""

import functools
import types

import jax
import numpy as np

_NUMBERS = (bool, int, float, complex, np.generic, np.ndarray, jax.Array)


def captured_values(tree) -> list:
    """The arrays and numbers among `tree`'s leaves, and those its functions capture."""
    values, _ = _walk(tree)
    return values


def referenced_arrays(tree) -> list:
    """`captured_values`' arrays, and the arrays that `tree`'s Python functions (and the
    functions they capture) name as globals: a script's data at module level, which a
    compiled solve holds as constants. For sizing a problem, not for telling problems
    apart (a global can change between two solves unseen)."""
    values, functions = _walk(tree)
    arrays = [v for v in values if isinstance(v, (np.ndarray, jax.Array))]
    for fn in functions:
        names = set(fn.__code__.co_names)
        for const in fn.__code__.co_consts:  # (nested functions and lambdas)
            if isinstance(const, types.CodeType):
                names |= set(const.co_names)
        arrays += [fn.__globals__[n] for n in names
                   if isinstance(fn.__globals__.get(n), (np.ndarray, jax.Array))]
    return arrays


def _walk(tree) -> tuple[list, list]:
    """`(values, functions)`: the arrays and numbers among `tree`'s leaves and what its
    functions capture, and the Python functions met on the way."""
    values, functions, seen = [], [], set()

    def visit(part):
        try:
            leaves = jax.tree.leaves(part)
        except (TypeError, ValueError):  # (captured, not a pytree: a dict with mixed keys)
            return
        for leaf in leaves:
            if isinstance(leaf, _NUMBERS):
                values.append(leaf)
            elif callable(leaf) and id(leaf) not in seen:
                if isinstance(leaf, types.FunctionType):
                    functions.append(leaf)
                for captured in _captured(leaf, seen):
                    visit(captured)

    visit(tree)
    return values, functions


def _captured(fn, seen: set) -> list:
    """What a function reads besides its arguments, as far as Python shows it: a
    closure's cells and defaults (so `lambda x: loss(x, lam)` counts `lam`), a
    `functools.partial`'s arguments, a bound method's object, a wrapped function
    (`__wrapped__`); not globals, nor other objects' attributes. A mutable container
    in a closure (a log) counts as it is when the solve is traced: one that changes
    makes the next solve a new problem (a refreshed warm start, not an exact
    continuation). `seen`: the ids already walked."""
    if id(fn) in seen:
        return []
    seen.add(id(fn))
    if isinstance(fn, functools.partial):
        return [fn.func, fn.args, fn.keywords]
    if isinstance(fn, types.MethodType):
        return [fn.__func__, fn.__self__]
    if not isinstance(fn, types.FunctionType):  # e.g. `jax.jit(f)`: what `f` captures
        return [getattr(fn, "__wrapped__", None)]
    cells = []
    for cell in fn.__closure__ or ():
        try:
            cells.append(cell.cell_contents)
        except ValueError:  # (a cell not yet filled)
            pass
    return [cells, fn.__defaults__, fn.__kwdefaults__]
