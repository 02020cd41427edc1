"""The ``sqp`` section: constrained minimisation, jaxmin ``SQP`` (the whole solve in
one ``jax.jit``) against SciPy ``SLSQP`` and ``trust-constr``.

Problems: every Hock-Schittkowski problem of the test suite (``tests/hs_bounds.py``:
bound-only; ``tests/hs_constrained.py``: equality/inequality constraints), from the
book's standard starts (projected into the bounds); and medium-size problems with
exact references (``problems.CONSTRAINED``): the Euclidean projection onto the
simplex at n = 10, 200 and 1000 and a mean-variance portfolio of 500 assets. SciPy gets
jitted JAX functions as float64 NumPy callables: ``value_and_grad`` of the objective
(``jac=True``), the constraint values and their Jacobians (``jax.jacfwd``);
trust-constr approximates the Hessians by BFGS. Every problem gets its own compiled
jaxmin solve and its own jitted SciPy callables (the tests share compilations
across problems with ``lax.switch``; that dispatch was measured to slow every
evaluation several-fold, so the benchmark does not use it).

*Solved* = ``|f - f*| <= 1e-6 max(1, |f*|)`` and violation (constraints and bounds)
``<= 1e-6``, against the book's ``f*`` (medium problems: the exact ``f*``, and
``|x - x*|`` is reported). *Evaluations* = jaxmin ``num_fun_evals`` (value and
gradient together count once), SciPy ``nfev``. *First call* = trace + compile +
solve (SciPy: its callables' compilation on the first evaluation + solve; jaxmin's on
the HS problems both in ``jax.jit`` and called directly, as a script calls it); *steady*
= the median of repeated calls, round-robin interleaved over the solvers.

``python -m benchmarks --only sqp`` runs it (``--only simplex,portfolio`` the
medium problems alone).
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize as so

from . import problems as P
from .protocol import FunctionSection, Options
from .report import fmt_time
from .runners import numpy_value_and_grad
from .timing import interleaved_medians, median, timed_call

GTOL, CTOL = 1e-6, 1e-8  # jaxmin SQP
SLSQP_FTOL = 1e-10
TRUST_GTOL = TRUST_XTOL = 1e-10
MAXITER = 500
SOLVERS = ("jaxmin", "slsqp", "trust-constr")
LABEL = {"jaxmin": "jaxmin SQP (jit)", "slsqp": "SciPy SLSQP", "trust-constr": "SciPy trust-constr"}
QUICK = ("hs001", "hs038", "hs006", "hs071", "hs100", "simplex-projection-10")
# (problem, solver) pairs not run, and why (measured on the 2-core machine)
SKIP = {("portfolio-500", "trust-constr"): "not run (~90 s per solve; stops at maxiter unsolved)",
        ("simplex-projection-1000", "trust-constr"): "not run (n = 200 already takes ~1.3 s per solve)"}


def _hs(p) -> P.Constrained:
    bounds = None if p.bounds is None else tuple(np.asarray(b, float) for b in p.bounds)
    x_star = None if p.x_star is None else np.asarray(p.x_star, float)
    return P.Constrained(p.name, p.fn, np.asarray(p.x0, float), p.f_star, x_star, p.eq, p.ineq, bounds)


# name -> builder, in report order: the HS problems, then the medium-size ones
BUILDERS: dict[str, Callable[[], P.Constrained]] = {
    **{p.name: (lambda p=p: _hs(p)) for p in P.hs_module("hs_problems").all_problems()},
    **P.CONSTRAINED,
}


@dataclasses.dataclass
class SRow:
    problem: str
    n: int
    me: int
    mi: int
    bounds: bool
    medium: bool  # a problems.CONSTRAINED problem (its own table)
    solved: dict = dataclasses.field(default_factory=dict)
    evals: dict = dataclasses.field(default_factory=dict)
    f: dict = dataclasses.field(default_factory=dict)
    x_err: dict = dataclasses.field(default_factory=dict)  # max|x - x*| where x* is known
    first: dict = dataclasses.field(default_factory=dict)
    first_direct: float | None = None  # jaxmin's first call as a script makes it (HS rows)
    steady: dict = dataclasses.field(default_factory=dict)
    error: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class SResult:
    rows: list
    descriptions: dict  # medium problems: name -> description
    repeats: int
    elapsed: float
    solvers: tuple


def _call(c: Callable | None, args: tuple) -> Callable | None:
    return None if c is None else (lambda x: c(x, *args))


def _violation(p: P.Constrained, x) -> float:
    x, v = np.asarray(x, float), 0.0
    if p.eq is not None:
        v = max(v, float(np.max(np.abs(np.asarray(p.eq(jnp.asarray(x), *p.args))))))
    if p.ineq is not None:
        v = max(v, float(np.max(-np.asarray(p.ineq(jnp.asarray(x), *p.args)), initial=0.0)))
    if p.bounds is not None:
        lo, up = p.bounds
        v = max(v, float(np.max(np.maximum(lo - x, 0))), float(np.max(np.maximum(x - up, 0))))
    return v


def _solved(p: P.Constrained, f, x) -> bool:
    return bool(abs(f - p.f_star) <= 1e-6 * max(1.0, abs(p.f_star)) and _violation(p, x) <= 1e-6)


def _count(c, p: P.Constrained) -> int:
    if c is None:
        return 0
    return int(jax.eval_shape(_call(c, p.args), jax.ShapeDtypeStruct((p.n,), jnp.float64)).shape[0])


def _scipy_callables(p: P.Constrained):
    """NumPy float64 callables for SciPy from jitted JAX functions of the problem."""
    fg = numpy_value_and_grad(p.fn)

    def fun(x):
        return fg(x, *p.args)

    def pair(c):
        c_jit, jac_jit = jax.jit(c), jax.jit(jax.jacfwd(c))
        return lambda x: np.asarray(c_jit(x, *p.args)), lambda x: np.asarray(jac_jit(x, *p.args))

    return fun, pair(p.eq) if _count(p.eq, p) else None, pair(p.ineq) if _count(p.ineq, p) else None


def _x0(p: P.Constrained) -> np.ndarray:
    return p.x0 if p.bounds is None else np.clip(p.x0, *p.bounds)


def _slsqp_call(p: P.Constrained, fun, eq, ineq):
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


def _trust_call(p: P.Constrained, fun, eq, ineq):
    cons = []
    if eq:
        cons.append(so.NonlinearConstraint(eq[0], 0.0, 0.0, jac=eq[1], hess=so.BFGS()))
    if ineq:
        cons.append(so.NonlinearConstraint(ineq[0], 0.0, np.inf, jac=ineq[1], hess=so.BFGS()))
    bounds = None if p.bounds is None else so.Bounds(*p.bounds)
    x0 = _x0(p)

    def call():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return so.minimize(fun, x0, jac=True, hess=so.BFGS(), method="trust-constr", bounds=bounds,
                               constraints=cons, options={"gtol": TRUST_GTOL, "xtol": TRUST_XTOL,
                                                          "maxiter": MAXITER})
    return call


def _jaxmin_call(p: P.Constrained):
    """``() -> (x, f, evals, status)``: ``jm.minimize`` in ``jax.jit``, the data as jit
    arguments (the bounds closed over)."""
    import jaxmin as jm

    solver = jm.SQP(gtol=GTOL, ctol=CTOL)
    bounds = None if p.bounds is None else tuple(jnp.asarray(b, jnp.float64) for b in p.bounds)

    @jax.jit
    def solve(x0, args):
        sol = jm.minimize(p.fn, x0, solver, args=args, eq=p.eq, ineq=p.ineq, bounds=bounds, max_steps=MAXITER)
        return sol.x, sol.fun, sol.num_fun_evals, sol.status

    x0 = jnp.asarray(_x0(p))
    return lambda: solve(x0, p.args)


def _jaxmin_direct(p: P.Constrained) -> Callable:
    """`jm.minimize` called directly, as a script calls it (outside any `jit`: problems of
    at most 16 unknowns compile with jaxmin's tiny-problem options), on a fresh closure
    of `fn`, so the first call traces and compiles anew."""
    import jaxmin as jm

    solver = jm.SQP(gtol=GTOL, ctol=CTOL)
    bounds = None if p.bounds is None else tuple(jnp.asarray(b, jnp.float64) for b in p.bounds)
    fn = lambda x, *args: p.fn(x, *args)  # noqa: E731
    x0 = jnp.asarray(_x0(p))
    return lambda: jm.minimize(fn, x0, solver, args=p.args, eq=p.eq, ineq=p.ineq, bounds=bounds,
                               max_steps=MAXITER).x


def _calls(p: P.Constrained, solvers: tuple[str, ...]) -> dict[str, Callable]:
    fun, eq, ineq = _scipy_callables(p)
    makers = {"jaxmin": lambda: _jaxmin_call(p), "slsqp": lambda: _slsqp_call(p, fun, eq, ineq),
              "trust-constr": lambda: _trust_call(p, fun, eq, ineq)}
    return {s: makers[s]() for s in solvers}


def _first_call(p: P.Constrained, row: SRow, name: str, call: Callable) -> None:
    row.first[name], out = timed_call(call)
    if name == "jaxmin":
        x, f, nfev, _ = jax.device_get(out)
    else:
        x, f, nfev = out.x, out.fun, out.nfev
    row.solved[name], row.evals[name], row.f[name] = _solved(p, float(f), x), int(nfev), float(f)
    if p.x_star is not None:
        row.x_err[name] = float(np.max(np.abs(np.asarray(x) - p.x_star)))


def run_problem(p: P.Constrained, options: Options, repeats: int, budget_s: float) -> SRow:
    row = SRow(p.name, p.n, _count(p.eq, p), _count(p.ineq, p), p.bounds is not None, p.name in P.CONSTRAINED)
    solvers = options.pick(SOLVERS)
    row.error.update({s: SKIP[p.name, s] for s in solvers if (p.name, s) in SKIP})
    calls = _calls(p, tuple(s for s in solvers if s not in row.error))
    for name, call in list(calls.items()):
        try:
            _first_call(p, row, name, call)
        except Exception as e:  # noqa: BLE001
            row.error[name] = f"{type(e).__name__}: {e}"[:80]
            del calls[name]
    if "jaxmin" in calls and not row.medium:  # (after the jitted call: one-off costs fall there)
        row.first_direct = timed_call(_jaxmin_direct(p))[0]
    times, errors = interleaved_medians(calls, repeats, budget_s)
    for name, ts in times.items():
        if ts:
            row.steady[name] = median(ts)
    for name, e in errors.items():
        row.error[name] = f"{type(e).__name__}: {e}"[:80]
    options.log(f"  [sqp {p.name}] " + "  ".join(
        f"{s}: {'✓' if row.solved.get(s) else '✗'} {row.evals.get(s, '–')} evals first "
        f"{fmt_time(row.first.get(s))} steady {fmt_time(row.steady.get(s))}" for s in calls))
    return row


def run(options: Options) -> SResult:
    options.log("[sqp] jaxmin SQP against SciPy SLSQP and trust-constr")
    repeats, budget_s = options.repeats_or(7, 3), options.budget_or(5.0)
    t_start = time.perf_counter()
    names = [n for n in BUILDERS if options.selects(n) and (options.problems or not options.quick or n in QUICK)]
    rows, descriptions = [], {}
    for name in names:
        p = BUILDERS[name]()
        if p.description:
            descriptions[name] = p.description
        rows.append(run_problem(p, options, repeats, budget_s))
    return SResult(rows, descriptions, repeats, time.perf_counter() - t_start, options.pick(SOLVERS))


# --------------------------------------------------------------------------- #
# Report
# --------------------------------------------------------------------------- #


def summary(res: SResult) -> dict:
    """Over the HS problems: solved counts, the medians of jaxmin / SLSQP evaluation
    and time ratios over the problems both solve, jaxmin's slowest first call."""
    hs = [r for r in res.rows if not r.medium]
    out = {"solved": {s: sum(bool(r.solved.get(s)) for r in hs) for s in res.solvers}, "of": len(hs)}
    firsts = [r.first["jaxmin"] for r in hs if "jaxmin" in r.first]
    if firsts:
        out["first_median"], out["first_max"] = float(np.median(firsts)), float(np.max(firsts))
    direct = [r.first_direct for r in hs if r.first_direct is not None]
    if direct:
        out["direct_median"], out["direct_max"] = float(np.median(direct)), float(np.max(direct))
    both = [r for r in hs if r.solved.get("jaxmin") and r.solved.get("slsqp")]
    if both:
        out["evals_ratio"] = float(np.median([r.evals["jaxmin"] / r.evals["slsqp"] for r in both]))
        timed = [r for r in both if "jaxmin" in r.steady and "slsqp" in r.steady]
        if timed:
            ratios = [r.steady["jaxmin"] / r.steady["slsqp"] for r in timed]
            out["time_ratio"] = float(np.median(ratios))
            out["time_ratio_max"] = float(np.max(ratios))
        out["both"] = len(both)
    if {"jaxmin", "slsqp"} <= set(res.solvers):
        out["slsqp_only"] = [r.problem for r in hs if r.solved.get("slsqp") and not r.solved.get("jaxmin")]
        out["jaxmin_only"] = [r.problem for r in hs if r.solved.get("jaxmin") and not r.solved.get("slsqp")]
    return out


def _cell(r: SRow, s: str) -> str:
    if s in r.error and s not in r.solved:
        return f"{r.error[s]} | – | –"
    ok = "✓" if r.solved.get(s) else "✗"
    t = r.steady.get(s)
    return f"{ok} | {r.evals.get(s, '–')} | " + ("–" if t is None else f"{t * 1e3:.2f}")


def _ratio(r: SRow) -> str:
    if "jaxmin" in r.steady and "slsqp" in r.steady:
        return f"{r.steady['jaxmin'] / r.steady['slsqp']:.3f}"
    return "–"


def _summary_text(res: SResult) -> str:
    sm = summary(res)
    parts = ["Solved: " + ", ".join(f"{LABEL[s]} {n}/{sm['of']}" for s, n in sm["solved"].items()) + "."]
    if "first_median" in sm:
        parts.append(f" jaxmin first call: median {fmt_time(sm['first_median'])}, max {fmt_time(sm['first_max'])}"
                     + (f" (in `jax.jit`; called directly: median {fmt_time(sm['direct_median'])}, max "
                        f"{fmt_time(sm['direct_max'])})" if "direct_median" in sm else "") + ".")
    if "evals_ratio" in sm:
        parts.append(
            f" On the {sm['both']} problems both jaxmin and SLSQP solve: median evaluations ratio "
            f"jaxmin/SLSQP {sm['evals_ratio']:.2f}"
            + (f", median steady-time ratio {sm['time_ratio']:.3f} (max {sm['time_ratio_max']:.3f})"
               if "time_ratio" in sm else "") + "."
        )
    if sm.get("slsqp_only"):
        parts.append(f" Solved by SLSQP only: {', '.join(sm['slsqp_only'])}.")
    if sm.get("jaxmin_only"):
        parts.append(f" Solved by jaxmin only: {', '.join(sm['jaxmin_only'])}.")
    return "".join(parts) + "\n\n"


def _hs_table(res: SResult, rows: list[SRow]) -> str:
    head = "| problem | n | eq | ineq | bounds | " + " | ".join(
        f"{LABEL[s]} | evals | ms" for s in res.solvers) + " | time ÷ SLSQP | first call " + " / ".join(
        LABEL[s] + (" / called directly" if s == "jaxmin" else "") for s in res.solvers) + " |\n"
    head += "|---|---:|---:|---:|---|" + "---|---:|---:|" * len(res.solvers) + "---:|---:|\n"
    lines = [
        f"| {r.problem} | {r.n} | {r.me} | {r.mi} | {'yes' if r.bounds else ''} | "
        + " | ".join(_cell(r, s) for s in res.solvers)
        + f" | {_ratio(r)} | {' / '.join(_firsts(r, s) for s in res.solvers)} |\n"
        for r in rows
    ]
    return head + "".join(lines)


def _firsts(r: SRow, s: str) -> str:
    return fmt_time(r.first.get(s)) + (f" / {fmt_time(r.first_direct)}" if s == "jaxmin" else "")


def _medium_table(res: SResult, rows: list[SRow]) -> str:
    head = "| problem | n | " + " | ".join(
        f"{LABEL[s]} | evals | first call | steady | max\\|x − x*\\|" for s in res.solvers) + " | steady ÷ SLSQP |\n"
    head += "|---|---:|" + "---|---:|---:|---:|---:|" * len(res.solvers) + "---:|\n"
    lines = []
    for r in rows:
        cells = []
        for s in res.solvers:
            if s in r.error and s not in r.solved:
                cells.append(f"{r.error[s]} | – | – | – | –")
                continue
            err = r.x_err.get(s)
            cells.append(f"{'✓' if r.solved.get(s) else '✗'} | {r.evals.get(s, '–')} | {fmt_time(r.first.get(s))} | "
                         f"{fmt_time(r.steady.get(s))} | {'–' if err is None else f'{err:.1e}'}")
        lines.append(f"| {r.problem} | {r.n} | " + " | ".join(cells) + f" | {_ratio(r)} |\n")
    return head + "".join(lines)


def markdown(res: SResult) -> str:
    if not res.rows:
        return ""
    hs = [r for r in res.rows if not r.medium]
    medium = [r for r in res.rows if r.medium]
    parts = [
        "\n## SQP: constrained problems\n\n",
        f"jaxmin `SQP(gtol={GTOL:g}, ctol={CTOL:g})`, the whole solve in one `jax.jit`, against SciPy "
        f"`SLSQP` (`ftol={SLSQP_FTOL:g}`) and `trust-constr` (`gtol=xtol={TRUST_GTOL:g}`, BFGS "
        f"Hessians), `maxiter={MAXITER}`, float64. SciPy calls jitted JAX value-and-gradient and "
        "constraint Jacobians through float64 NumPy. Solved = |f − f*| ≤ 1e-6·max(1, |f*|) and "
        "violation ≤ 1e-6. evals: jaxmin `num_fun_evals` (value+gradient once), SciPy `nfev`. "
        "First call = trace + compile + solve (jaxmin's on the HS problems also as a script makes "
        "it, `jm.minimize(...)` called directly: at most 16 unknowns compile with its tiny-problem "
        "options); steady = median of "
        f"{res.repeats} interleaved calls. Section wall time {res.elapsed:.0f} s.\n",
    ]
    if hs:
        parts += [
            f"\n### Hock–Schittkowski problems\n\n{len(hs)} HS problems (bound-only, equality, inequality, "
            "mixed), standard starts projected into the bounds, against the published f*. Steady "
            "times in ms.\n\n",
            _summary_text(res),
            _hs_table(res, hs),
        ]
    if medium:
        parts += [
            "\n### Medium size\n\n",
            "".join(f"- `{n}`: {d}\n" for n, d in res.descriptions.items()),
            "\n",
            _medium_table(res, medium),
        ]
    return "".join(parts)


SECTION = FunctionSection("sqp", SOLVERS, tuple(BUILDERS), run, markdown)
