"""Orchestration: run every solver on a problem, collect one row per solver."""

from __future__ import annotations

import dataclasses
import sys
import traceback
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import problems as P
from . import runners as R
from .timing import eval_time, hvp_time, interleaved_medians, median, timed_call


@dataclasses.dataclass
class Row:
    problem: str
    solver: str
    first: float | None = None  # s, first call (trace + compile + run)
    steady: float | None = None  # s, median of repeated calls from the steady start
    n_steady: int = 0
    iters: object = None  # standard start (batch: array)
    nfev: object = None
    gnorm: float | None = None  # ||g||_inf at the returned x, recomputed by the harness
    f: float | None = None
    iters_s: object = None  # steady start
    nfev_s: object = None
    gnorm_s: float | None = None
    ok: object = None  # solver's own success flag
    error: str | None = None
    note: str = ""
    ratio: float | None = None
    floor: float | None = None  # jaxmin only: nfev_s * t_eval (+ nhvp_s * t_hvp)
    nhvp: int | None = None  # Hessian-vector products (Newton section), standard start
    nhvp_s: int | None = None  # ... steady start
    # batch-only summaries
    n_conv: int | None = None
    batch: int | None = None

    @property
    def met_target(self) -> bool:
        return (
            self.error is None
            and self.gnorm is not None
            and self.gnorm <= R.GTOL
            and (self.gnorm_s is None or self.gnorm_s <= R.GTOL)
        )


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def _err(e: BaseException) -> str:
    msg = f"{type(e).__name__}: {e}".replace("\n", " ").replace("|", "/")
    return "error: " + (msg[:160] + "..." if len(msg) > 160 else msg)


def _gnorm_fn(problem: P.Problem, batched: bool) -> Callable:
    vg = jax.value_and_grad(problem.make_fun())

    def check(x, args):
        f, g = vg(x, *args)
        return f, jnp.max(jnp.abs(g))

    if batched:
        check = jax.vmap(check, in_axes=(0, None))
    check = jax.jit(check)
    return lambda x: tuple(np.asarray(a) for a in check(jnp.asarray(x), problem.args))


def warmup(solvers: dict[str, Callable], verbose: bool = True) -> None:
    """Run each solver twice on a tiny throwaway problem before any measurement, so
    that one-off library initialisation (module-level jits, lazily built helpers)
    is not charged to whichever problem comes first."""
    prob = P.warmup_problem()
    for name, make in solvers.items():
        try:
            runner = make(prob)
            for x0 in (prob.x0, prob.x0_steady):
                jax.block_until_ready(runner(jnp.asarray(x0)))
        except Exception as e:  # noqa: BLE001
            if verbose:
                log(f"  warm-up {name}: {_err(e)}")


def _record_failure(row: Row, where: str, e: Exception) -> None:
    """A solver that raised becomes an "error: ..." row instead of ending the run."""
    row.error = _err(e)
    log(f"  {where} {row.error}")
    if "--traceback" in sys.argv:
        traceback.print_exc()


def _set_ratios(rows: list[Row], reference: str | None = None) -> None:
    """ratio = steady / the best peer's steady; with ``reference``, steady / that
    solver's steady (no ratio when the reference has no steady time)."""
    if reference is not None:
        ref = next((r for r in rows if r.solver == reference and r.steady is not None), None)
        if ref is not None:
            for r in rows:
                if r.steady is not None:
                    r.ratio = r.steady / ref.steady
        return
    peers = [r for r in rows if not r.solver.startswith("jaxmin") and r.steady is not None]
    good = [r for r in peers if r.met_target]
    pool = good or peers
    if not pool:
        return
    best = min(r.steady for r in pool)
    for r in rows:
        if r.steady is not None:
            r.ratio = r.steady / best


def _steady(rows: dict[str, Row], runners: dict, x0s, repeats: int, budget_s: float) -> None:
    calls = {name: (lambda r=r: r(x0s)) for name, r in runners.items()}
    times, errors = interleaved_medians(calls, repeats, budget_s)
    for name, ts in times.items():
        if ts:
            rows[name].steady = median(ts)
            rows[name].n_steady = len(ts)
    for name, e in errors.items():
        rows[name].note = (rows[name].note + " steady " + _err(e)).strip()
        log(f"  {rows[name].problem:18s} {name:12s} steady {_err(e)}")


def run_problem(
    problem: P.Problem,
    solvers: dict[str, Callable],
    repeats: int,
    budget_s: float,
    skip: dict[str, str] | None = None,
    ratio_reference: str | None = None,
) -> list[Row]:
    """First call + steady timings of every solver on one problem.

    ``ratio_reference`` (the Newton section: "scipy-ncg") makes the ratio column
    relative to that solver instead of the best peer.  A runner that raises
    ``runners.OverBudget`` (a SciPy Newton-type solve past its time limit) becomes a
    "skipped: over budget" row.
    """
    skip = skip or {}
    check = _gnorm_fn(problem, batched=False)
    check(problem.x0)  # compile the checker outside any timing
    x0 = jnp.asarray(problem.x0)
    x0s = jnp.asarray(problem.x0_steady)
    rows: dict[str, Row] = {}
    runners: dict[str, R.Runner] = {}
    for name, make in solvers.items():
        row = rows[name] = Row(problem.name, name)
        if name in skip:
            row.error = skip[name]
            continue
        try:
            runner = make(problem)
            row.first, raw = timed_call(runner, x0)
            res = runner.result(raw)
            f, g = check(res.x)
            row.f, row.gnorm = float(f), float(g)
            row.iters, row.nfev, row.ok, row.note = res.iters, res.nfev, res.ok, res.note
            row.nhvp = res.nhvp
            # one untimed call from the steady start: its statistics (and a check
            # that it does not recompile: it is timed and logged)
            t_warm, raw = timed_call(runner, x0s)
            res = runner.result(raw)
            _, g = check(res.x)
            row.gnorm_s, row.iters_s, row.nfev_s = float(g), res.iters, res.nfev
            row.nhvp_s = res.nhvp
            runners[name] = runner
            hvp = "" if row.nhvp is None else f" hvp {row.nhvp:>6}"
            log(
                f"  {problem.name:18s} {name:12s} first {row.first:8.3f}s  its {row.iters:>6} "
                f"nfev {row.nfev:>6}{hvp}  |g|inf {row.gnorm:.2e}  (steady start: its {row.iters_s}, "
                f"|g|inf {row.gnorm_s:.2e}, {t_warm:.4f}s)"
            )
        except R.OverBudget as e:
            row.error = f"skipped: over budget ({e})"
            log(f"  {problem.name:18s} {name:12s} {row.error}")
        except Exception as e:  # noqa: BLE001
            _record_failure(row, f"{problem.name:18s} {name:12s}", e)

    _steady(rows, runners, x0s, repeats, budget_s)

    mine = [n for n in runners if n.startswith("jaxmin") and rows[n].nfev_s is not None]
    if mine:
        try:
            t_eval = eval_time(problem.make_fun(), x0s, problem.args)
            t_hvp = None
            if any(rows[n].nhvp_s for n in mine):
                t_hvp = hvp_time(problem.make_fun(), x0s, problem.args)
            for n in mine:
                rows[n].floor = rows[n].nfev_s * t_eval
                note = f"t_eval={t_eval * 1e6:.3g} µs"
                if t_hvp is not None and rows[n].nhvp_s is not None:
                    rows[n].floor += rows[n].nhvp_s * t_hvp
                    note += f", t_hvp={t_hvp * 1e6:.3g} µs"
                rows[n].note = (rows[n].note + " " + note).strip()
        except Exception as e:  # noqa: BLE001
            for n in mine:
                rows[n].note += f" floor {_err(e)}"
    out = list(rows.values())
    _set_ratios(out, ratio_reference)
    return out


def run_batch(
    size: int,
    solvers: dict[str, Callable],
    repeats: int,
    budget_s: float,
    skip: dict[str, str] | None = None,
) -> list[Row]:
    """vmap of a solve over ``size`` Rosenbrock n=2 problems (SciPy: a Python loop)."""
    skip = skip or {}
    base = P.get("rosenbrock-2")
    prob = dataclasses.replace(
        base,
        name=f"batch-rosenbrock-2x{size}",
        x0=P.batch_starts(size, P.BATCH_SEED),
        x0_steady=P.batch_starts(size, P.BATCH_SEED_STEADY),
    )
    check = _gnorm_fn(prob, batched=True)
    check(prob.x0)
    x0 = jnp.asarray(prob.x0)
    x0s = jnp.asarray(prob.x0_steady)
    rows: dict[str, Row] = {}
    runners = {}
    for name, make in solvers.items():
        row = rows[name] = Row(prob.name, name, batch=size)
        if name in skip:
            row.error = skip[name]
            continue
        try:
            runner = make(prob)
            row.first, raw = timed_call(runner, x0)
            res = runner.result(raw)
            f, g = check(res.x)
            row.gnorm = float(np.max(g))
            row.f = float(np.max(f))
            row.iters, row.nfev, row.ok = res.iters, res.nfev, res.ok
            row.n_conv = int(np.sum(g <= R.GTOL))
            _, raw = timed_call(runner, x0s)
            res = runner.result(raw)
            _, g = check(res.x)
            row.gnorm_s = float(np.max(g))
            row.iters_s, row.nfev_s = res.iters, res.nfev
            runners[name] = runner
            log(
                f"  {prob.name:18s} {name:16s} first {row.first:8.3f}s  its mean {np.mean(row.iters):.1f} "
                f"max {np.max(row.iters)}  max|g|inf {row.gnorm:.2e}  converged {row.n_conv}/{size}"
            )
        except Exception as e:  # noqa: BLE001
            _record_failure(row, f"{prob.name:18s} {name:16s}", e)
    _steady(rows, runners, x0s, repeats, budget_s)
    out = list(rows.values())
    _set_ratios(out)
    return out
