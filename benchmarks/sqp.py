"""The ``sqp`` section: constrained minimisation on the Hock-Schittkowski problems.

jaxmin ``SQP`` (the whole solve jitted) against SciPy ``SLSQP`` and ``trust-constr`` on
every HS problem of the test suite (``tests/hs_bounds.py``: bound-only;
``tests/hs_constrained.py``: equality/inequality constraints), from the book's
standard starts (projected into the bounds). SciPy gets jitted JAX functions as
float64 NumPy callables: ``value_and_grad`` of the objective (``jac=True``), the
constraint values and their Jacobians (``jax.jacfwd``); trust-constr approximates
the Hessians by BFGS. Every problem gets its own compiled jaxmin solve and its own
jitted SciPy callables (the tests share compilations across problems with
``lax.switch``; that dispatch was measured to slow every evaluation several-fold, so
the benchmark does not use it).

*Solved* = ``|f - f*| <= 1e-6 max(1, |f*|)`` and violation (constraints and bounds)
``<= 1e-6``, against the book's ``f*``. *Evaluations* = jaxmin ``num_fun_evals``
(value and gradient together count once), SciPy ``nfev``. *Steady* = the median of
``repeats`` calls, round-robin interleaved over the three solvers.

``python -m benchmarks --only sqp`` runs it inside the harness; ``python -m
benchmarks.sqp`` alone.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize as so

from .timing import interleaved_medians, median, timed_call

jax.config.update("jax_enable_x64", True)

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(os.path.dirname(HERE), "tests")

GTOL, CTOL = 1e-6, 1e-8  # jaxmin SQP
SLSQP_FTOL = 1e-10
TRUST_GTOL = TRUST_XTOL = 1e-10
MAXITER = 500
SOLVERS = ("jaxmin", "slsqp", "trust-constr")
LABEL = {"jaxmin": "jaxmin SQP (jit)", "slsqp": "SciPy SLSQP", "trust-constr": "SciPy trust-constr"}


@dataclasses.dataclass
class SRow:
    problem: str
    n: int
    me: int
    mi: int
    bounds: bool
    solved: dict = dataclasses.field(default_factory=dict)
    evals: dict = dataclasses.field(default_factory=dict)
    f: dict = dataclasses.field(default_factory=dict)
    steady: dict = dataclasses.field(default_factory=dict)
    error: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class SResult:
    rows: list
    repeats: int
    elapsed: float
    solvers: tuple


def _problems():
    if TESTS not in sys.path:
        sys.path.insert(0, TESTS)
    from hs_problems import all_problems

    return all_problems()


def _violation(p, x) -> float:
    x = np.asarray(x, float)
    v = 0.0
    if p.eq is not None:
        v = max(v, float(np.max(np.abs(np.asarray(p.eq(jnp.asarray(x)))))))
    if p.ineq is not None:
        v = max(v, float(np.max(-np.asarray(p.ineq(jnp.asarray(x))), initial=0.0)))
    if p.bounds is not None:
        lo, up = (np.asarray(b, float) for b in p.bounds)
        v = max(v, float(np.max(np.maximum(lo - x, 0))), float(np.max(np.maximum(x - up, 0))))
    return v


def _solved(p, f, x) -> bool:
    return bool(abs(f - p.f_star) <= 1e-6 * max(1.0, abs(p.f_star)) and _violation(p, x) <= 1e-6)


def _count(c, n) -> int:
    return 0 if c is None else int(jax.eval_shape(c, jax.ShapeDtypeStruct((n,), jnp.float64)).shape[0])


def _scipy_callables(p):
    """NumPy float64 callables for SciPy from jitted JAX functions of the problem."""
    me, mi = _count(p.eq, p.n), _count(p.ineq, p.n)
    fg = jax.jit(jax.value_and_grad(p.fn))

    def fun(x):
        f, g = fg(x)
        return float(f), np.asarray(g)

    def pair(c):
        c_jit, jac_jit = jax.jit(c), jax.jit(jax.jacfwd(c))
        return lambda x: np.asarray(c_jit(x)), lambda x: np.asarray(jac_jit(x))

    return fun, pair(p.eq) if me else None, pair(p.ineq) if mi else None


def _x0(p):
    x0 = np.asarray(p.x0, float)
    if p.bounds is not None:
        x0 = np.clip(x0, *(np.asarray(b, float) for b in p.bounds))
    return x0


def _slsqp_call(p, fun, eq, ineq):
    cons = []
    if eq:
        cons.append({"type": "eq", "fun": eq[0], "jac": eq[1]})
    if ineq:
        cons.append({"type": "ineq", "fun": ineq[0], "jac": ineq[1]})
    bounds = None
    if p.bounds is not None:
        bounds = [(None if math.isinf(lo) else lo, None if math.isinf(up) else up) for lo, up in zip(*p.bounds)]
    x0 = _x0(p)
    return lambda: so.minimize(fun, x0, jac=True, method="SLSQP", bounds=bounds, constraints=cons,
                               options={"ftol": SLSQP_FTOL, "maxiter": MAXITER})


def _trust_call(p, fun, eq, ineq):
    cons = []
    if eq:
        cons.append(so.NonlinearConstraint(eq[0], 0.0, 0.0, jac=eq[1], hess=so.BFGS()))
    if ineq:
        cons.append(so.NonlinearConstraint(ineq[0], 0.0, np.inf, jac=ineq[1], hess=so.BFGS()))
    bounds = None if p.bounds is None else so.Bounds(*(np.asarray(b, float) for b in p.bounds))
    x0 = _x0(p)

    def call():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return so.minimize(fun, x0, jac=True, hess=so.BFGS(), method="trust-constr", bounds=bounds,
                               constraints=cons, options={"gtol": TRUST_GTOL, "xtol": TRUST_XTOL,
                                                          "maxiter": MAXITER})
    return call


def _jaxmin_solve(jm, solver, p, bounds):
    def solve(x0):
        sol = jm.minimize(p.fn, x0, solver, eq=p.eq, ineq=p.ineq, bounds=bounds, max_steps=MAXITER)
        return sol.x, sol.fun, sol.num_fun_evals, sol.status

    return jax.jit(solve)


def run(repeats: int = 7, budget_s: float = 5.0, skip: dict | None = None, log=print,
        solvers: tuple = SOLVERS) -> SResult:
    import jaxmin as jm

    t_start = time.perf_counter()
    skip = skip or {}
    solver = jm.SQP(gtol=GTOL, ctol=CTOL)
    rows = []
    for p in _problems():
        bounds = None if p.bounds is None else tuple(jnp.asarray(b, jnp.float64) for b in p.bounds)

        jaxmin_solve = _jaxmin_solve(jm, solver, p, bounds)
        row = SRow(p.name, p.n, _count(p.eq, p.n), _count(p.ineq, p.n), p.bounds is not None)
        rows.append(row)
        fun, eq, ineq = _scipy_callables(p)
        calls = {}
        if "jaxmin" in solvers and "jaxmin" not in skip:
            x0 = jnp.asarray(_x0(p))
            calls["jaxmin"] = lambda x0=x0, f=jaxmin_solve: f(x0)
        if "slsqp" in solvers:
            calls["slsqp"] = _slsqp_call(p, fun, eq, ineq)
        if "trust-constr" in solvers:
            calls["trust-constr"] = _trust_call(p, fun, eq, ineq)
        for name, call in list(calls.items()):
            try:
                _, out = timed_call(call)
            except Exception as e:  # noqa: BLE001
                row.error[name] = f"{type(e).__name__}: {e}"[:80]
                del calls[name]
                continue
            if name == "jaxmin":
                x, f, nfev, _ = jax.device_get(out)
            else:
                x, f, nfev = out.x, out.fun, out.nfev
            row.solved[name], row.evals[name], row.f[name] = _solved(p, float(f), x), int(nfev), float(f)
        times, errors = interleaved_medians(calls, repeats, budget_s)
        for name, ts in times.items():
            if ts:
                row.steady[name] = median(ts)
        for name, e in errors.items():
            row.error[name] = f"{type(e).__name__}: {e}"[:80]
        log(f"  [sqp {p.name}] " + "  ".join(
            f"{s}: {'✓' if row.solved.get(s) else '✗'} {row.evals.get(s, '–')} evals "
            f"{row.steady.get(s, float('nan')) * 1e3:.2f} ms" for s in calls))
    for s in skip:
        for r in rows:
            r.error.setdefault(s, skip[s])
    return SResult(rows, repeats, time.perf_counter() - t_start, tuple(s for s in SOLVERS if s in solvers))


def summary(res: SResult) -> dict:
    """Solved counts, and the medians of jaxmin / SLSQP evaluation and time ratios
    over the problems both solve."""
    out = {"solved": {s: sum(bool(r.solved.get(s)) for r in res.rows) for s in res.solvers}}
    both = [r for r in res.rows if r.solved.get("jaxmin") and r.solved.get("slsqp")]
    if both:
        out["evals_ratio"] = float(np.median([r.evals["jaxmin"] / r.evals["slsqp"] for r in both]))
        timed = [r for r in both if "jaxmin" in r.steady and "slsqp" in r.steady]
        if timed:
            ratios = [r.steady["jaxmin"] / r.steady["slsqp"] for r in timed]
            out["time_ratio"] = float(np.median(ratios))
            out["time_ratio_max"] = float(np.max(ratios))
        out["both"] = len(both)
    out["slsqp_only"] = [r.problem for r in res.rows if r.solved.get("slsqp") and not r.solved.get("jaxmin")]
    out["jaxmin_only"] = [r.problem for r in res.rows if r.solved.get("jaxmin") and not r.solved.get("slsqp")]
    return out


def _cell(r: SRow, s: str) -> str:
    if s in r.error and s not in r.solved:
        return f"{r.error[s]} | – | –"
    ok = "✓" if r.solved.get(s) else "✗"
    t = r.steady.get(s)
    return f"{ok} | {r.evals.get(s, '–')} | " + ("–" if t is None else f"{t * 1e3:.2f}")


def markdown(res: SResult) -> str:
    sm = summary(res)
    parts = [
        "\n## SQP: constrained Hock–Schittkowski problems\n\n",
        (f"jaxmin `SQP(gtol={GTOL:g}, ctol={CTOL:g})`, the whole solve in one `jax.jit`, against SciPy "
        f"`SLSQP` (`ftol={SLSQP_FTOL:g}`) and `trust-constr` (`gtol=xtol={TRUST_GTOL:g}`, BFGS "
        f"Hessians), `maxiter={MAXITER}`, on {len(res.rows)} HS problems (bound-only, equality, "
        "inequality, mixed), standard starts projected into the bounds. SciPy calls jitted JAX "
        "value-and-gradient and constraint Jacobians through float64 NumPy. Solved = |f − f*| ≤ "
        "1e-6·max(1, |f*|) and violation ≤ 1e-6 against the published f*. evals: jaxmin "
        "`num_fun_evals` (value+gradient once), SciPy `nfev`. Steady = median of "
        f"{res.repeats} interleaved calls (ms). Total {res.elapsed:.0f} s.\n\n"),
        "Solved: " + ", ".join(f"{LABEL[s]} {n}/{len(res.rows)}" for s, n in sm["solved"].items()) + ".",
    ]
    if "evals_ratio" in sm:
        parts.append(
            f" On the {sm['both']} problems both jaxmin and SLSQP solve: median evaluations ratio "
            f"jaxmin/SLSQP {sm['evals_ratio']:.2f}"
            + (f", median steady-time ratio {sm['time_ratio']:.3f} (max {sm['time_ratio_max']:.3f})"
               if "time_ratio" in sm else "") + "."
        )
    if sm["slsqp_only"]:
        parts.append(f" Solved by SLSQP only: {', '.join(sm['slsqp_only'])}.")
    if sm["jaxmin_only"]:
        parts.append(f" Solved by jaxmin only: {', '.join(sm['jaxmin_only'])}.")
    parts.append("\n\n")
    head = "| problem | n | eq | ineq | bounds | " + " | ".join(
        f"{LABEL[s]} | evals | ms" for s in res.solvers) + " | time ÷ SLSQP |\n"
    head += "|---|---:|---:|---:|---|" + "---|---:|---:|" * len(res.solvers) + "---:|\n"
    parts.append(head)
    for r in res.rows:
        ratio = "–"
        if "jaxmin" in r.steady and "slsqp" in r.steady:
            ratio = f"{r.steady['jaxmin'] / r.steady['slsqp']:.3f}"
        parts.append(f"| {r.problem} | {r.n} | {r.me} | {r.mi} | {'yes' if r.bounds else ''} | "
                     + " | ".join(_cell(r, s) for s in res.solvers) + f" | {ratio} |\n")
    return "".join(parts)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(prog="python -m benchmarks.sqp")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    result = run(a.repeats)
    md = markdown(result)
    print(md)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(md)
