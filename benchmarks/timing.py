"""Timing helpers: first-call time, interleaved steady-state medians, eval floor."""

from __future__ import annotations

import gc
import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


def timed_call(fn: Callable, *a) -> tuple[float, Any]:
    """Wall time of ``fn(*a)`` including ``jax.block_until_ready`` of its output.

    The garbage collector is disabled during the call (as ``timeit`` does) so that a
    collection triggered by an earlier solver is not charged to this one.  There is
    deliberately no ``gc.collect()`` right before the call: a full collection walks
    every Python object, evicts the CPU caches, and was measured to add 0.2-0.35 ms
    to the *next* call of every JAX solver on the reference VM.
    """
    gc.disable()
    try:
        t0 = time.perf_counter()
        out = fn(*a)
        jax.block_until_ready(out)
        t = time.perf_counter() - t0
    finally:
        gc.enable()
    return t, out


def interleaved_medians(
    calls: dict[str, Callable[[], Any]],
    repeats: int,
    budget_s: float = float("inf"),
) -> tuple[dict[str, list[float]], dict[str, BaseException]]:
    """Run every call ``repeats`` times, round-robin, and return all timings.

    Round-robin (A B C A B C ...) rather than blocked (A A A B B B ...) so that slow
    drifts of the machine (thermal, noisy neighbours) hit every solver alike.  A
    solver whose accumulated time exceeds ``budget_s`` is dropped from the later
    rounds once it has at least one timing (the report shows how many were taken).
    A call that raises is dropped from the later rounds; its exception is returned.
    """
    times: dict[str, list[float]] = {k: [] for k in calls}
    errors: dict[str, BaseException] = {}
    for _ in range(repeats):
        for name, call in calls.items():
            if name in errors or (times[name] and sum(times[name]) > budget_s):
                continue
            try:
                t, _ = timed_call(call)
            except Exception as e:  # noqa: BLE001
                errors[name] = e
                continue
            times[name].append(t)
    return times, errors


def rounds_for(calls: dict[str, Callable[[], Any]], repeats: int, seconds: float = 0.5, most: int = 201) -> int:
    """How many rounds `interleaved_medians` should run: `repeats`, or for calls so fast
    that a median of `repeats` varies from run to run (sub-millisecond solves on a shared
    machine, by 20% and more), as many rounds as fit in `seconds`, at most `most`. One
    timed call of each (warm: after its first call) sets a round's time."""
    round_s = 0.0
    for call in calls.values():
        try:
            round_s += timed_call(call)[0]
        except Exception:  # noqa: BLE001  (`interleaved_medians` reports it)
            pass
    return max(repeats, min(most, int(seconds / max(round_s, 1e-9))))


def median(ts: list[float]) -> float:
    return statistics.median(ts) if ts else float("nan")


def eval_time(fun: Callable, x0, args: tuple, target_s: float = 0.05, repeats: int = 5) -> float:
    """Seconds per ``value_and_grad(fun)`` evaluation, measured inside one jitted
    ``lax.fori_loop``.

    Each iteration feeds the result back into the next point (``x + eps * g`` with
    ``eps`` a runtime argument equal to 0), so XLA can neither hoist the evaluation
    out of the loop nor fold it away; the value is also accumulated.  The loop count
    is doubled until one loop takes ``target_s``; the reported figure is the median
    over ``repeats`` loops divided by the loop count.
    """
    vg = jax.value_and_grad(fun)

    def step(x, eps, args):
        v, g = vg(x, *args)
        return x + eps * g, v

    return _loop_time(step, x0, args, target_s, repeats)


def hvp_time(fun: Callable, x0, args: tuple, target_s: float = 0.05, repeats: int = 5) -> float:
    """Seconds per forward-over-reverse Hessian-vector product
    ``jax.jvp(jax.grad(fun), (x,), (p,))``, measured like ``eval_time`` (the product
    is fed back into both ``x`` and the direction with a runtime ``eps = 0`` and its
    sum accumulated, so the loop can neither be hoisted nor dropped)."""
    grad = jax.grad(fun)

    def step(carry, eps, args):
        x, p = carry
        _, hv = jax.jvp(lambda y: grad(y, *args), (x,), (p,))
        return (x + eps * hv, p + eps * hv), jnp.sum(hv)

    x0 = jnp.asarray(x0)
    return _loop_time(step, (x0, jnp.ones_like(x0)), args, target_s, repeats)


def _loop_time(step: Callable, carry0, args: tuple, target_s: float, repeats: int) -> float:
    """Seconds per ``step(carry, eps, args) -> (carry, scalar)`` inside a jitted
    ``fori_loop`` (see ``eval_time``)."""

    def loop(carry, eps, args, n):
        def body(i, c):
            carry, acc = c
            carry, v = step(carry, eps, args)
            return carry, acc + v

        return jax.lax.fori_loop(0, n, body, (carry, jnp.zeros((), eps.dtype)))

    loop = jax.jit(loop)  # n is a traced bound: compiled once for all counts
    carry0 = jax.tree_util.tree_map(jnp.asarray, carry0)
    eps = jnp.zeros((), jax.tree_util.tree_leaves(carry0)[0].dtype)
    jax.block_until_ready(loop(carry0, eps, args, 1))  # compile
    n = 1
    t, _ = timed_call(loop, carry0, eps, args, n)
    while t < target_s / 8 and n < (1 << 24):
        n *= 2
        t, _ = timed_call(loop, carry0, eps, args, n)
    n = max(1, int(round(n * target_s / max(t, 1e-9))))
    ts = [timed_call(loop, carry0, eps, args, n)[0] for _ in range(repeats)]
    return float(np.median(ts)) / n
