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

Newton-CG section: the objective is rebuilt as a ``jax.custom_vjp`` function whose
backward pass calls a ``jax.custom_jvp`` gradient; the gradient's JVP rule fires a
callback on the *tangent*, so it runs once per Hessian-vector product actually
applied (whether the solver calls ``jax.jvp(grad f)`` each time or
``jax.linearize``-s the gradient once and applies the linear map repeatedly);
values and derivatives are unchanged.  HVPs counted this way are compared with the
reported HVPs.  The forward-pass callback then counts evaluations plus one per
gradient linearisation: for SciPy (a jitted jvp-of-grad per ``hessp`` call) that
is evals + HVPs; for jaxmin NewtonCG, which linearises the gradient once per Newton
step, it is evals + iterations; both are checked.  For SciPy the two Python
callables (value-and-gradient, ``hessp``) are also counted and compared with
``nfev`` / ``nhev`` (trust-ncg's ``nhev`` is one more than its ``hessp`` calls).
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
from . import newton as N  # noqa: E402
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


def counted_newton(problem: P.Problem):
    """``problem`` with an objective that counts forward passes and applied HVPs."""
    count = {"f": 0, "hvp": 0}
    base = problem.base
    grad0 = jax.grad(base)

    def bump(key):
        def cb(_):
            count[key] += 1

        return cb

    @jax.custom_jvp
    def grad_marked(x, *args):
        return grad0(x, *args)

    @grad_marked.defjvp
    def _grad_jvp(primals, tangents):
        x, *args = primals
        p = tangents[0]
        jax.debug.callback(bump("hvp"), p.ravel()[0])  # runs once per applied HVP
        return jax.jvp(lambda y: grad0(y, *args), (x,), (p,))

    @jax.custom_vjp
    def fun(x, *args):
        jax.debug.callback(bump("f"), x.ravel()[0])
        return base(x, *args)

    def fun_fwd(x, *args):
        jax.debug.callback(bump("f"), x.ravel()[0])
        return base(x, *args), (x, args)

    def fun_bwd(res, ct):
        x, args = res
        return (ct * grad_marked(x, *args), *(jnp.zeros_like(a) for a in args))

    fun.defvjp(fun_fwd, fun_bwd)
    return dataclasses.replace(problem, base=fun), count


def _count_python_calls(runner, counts: dict) -> None:
    """Wrap a SciPy Newton runner's value-and-gradient and hessp callables."""
    fg, hessp = runner._fg, runner._hessp

    def fg_counted(*a):
        counts["fg"] += 1
        return fg(*a)

    def hessp_counted(*a):
        counts["hessp"] += 1
        return hessp(*a)

    runner._fg, runner._hessp = fg_counted, hessp_counted


def main(argv: list[str]) -> None:
    names = argv or list(P.BUILDERS)
    print(f"{'problem':18s} {'solver':16s} {'reported':>9s} {'counted':>8s}")
    for name in names:
        prob, count = counted(P.get(name))
        for solver, make in R.SINGLE.items():
            try:
                runner = make(prob)
                count[0] = 0
                raw = jax.block_until_ready(runner(jnp.asarray(prob.x0)))
                jax.effects_barrier()
                res = runner.result(raw)
                mark = "" if res.nfev == count[0] else "  <-- differs"
                print(f"{name:18s} {solver:16s} {res.nfev:>9d} {count[0]:>8d}{mark}", flush=True)
            except Exception as e:  # noqa: BLE001
                print(f"{name:18s} {solver:12s} error: {type(e).__name__}: {e}", flush=True)
        nprob, ncount = counted_newton(P.get(name))
        for solver, make in N.NEWTON.items():
            try:
                runner = make(nprob)
                calls = {"fg": 0, "hessp": 0}
                scipy_runner = isinstance(runner, N.ScipyNewtonRunner)
                if scipy_runner:
                    _count_python_calls(runner, calls)
                ncount.update(f=0, hvp=0)
                raw = jax.block_until_ready(runner(jnp.asarray(nprob.x0)))
                jax.effects_barrier()
                res = runner.result(raw)

                def cmp(a, b):
                    return "" if a == b else "  <-- differs"

                applied = calls["hessp"] if scipy_runner else res.nhvp
                print(f"{name:18s} {solver:16s} {res.nhvp:>9d} {ncount['hvp']:>8d}  (HVPs){cmp(applied, ncount['hvp'])}")
                if scipy_runner:
                    expect, what = res.nfev + calls["hessp"], "evals + hessp calls"
                    print(
                        f"{'':18s} {'':16s} nfev {res.nfev} vs {calls['fg']} value_and_grad calls"
                        f"{cmp(res.nfev, calls['fg'])}; nhev {res.nhvp} vs {calls['hessp']} hessp calls"
                        f"{cmp(res.nhvp, calls['hessp'])}"
                    )
                else:
                    expect, what = res.nfev + res.iters, "evals + iterations"
                print(
                    f"{'':18s} {'':16s} forward passes {ncount['f']} vs {what} {expect}{cmp(expect, ncount['f'])}",
                    flush=True,
                )
            except Exception as e:  # noqa: BLE001
                print(f"{name:18s} {solver:16s} error: {type(e).__name__}: {e}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
