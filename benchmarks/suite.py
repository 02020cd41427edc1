"""The harness of the ``lbfgs``, ``newton`` and ``batch`` sections: run every
solver on a problem, collect one row per solver (first call, steady time, counts,
the gradient norm recomputed here)."""

from __future__ import annotations

import dataclasses
import time
import traceback
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import problems as P
from . import runners as R
from .protocol import Options
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
            and self.gnorm <= P.GTOL
            and (self.gnorm_s is None or self.gnorm_s <= P.GTOL)
        )


@dataclasses.dataclass
class HarnessResult:
    """What the ``lbfgs``, ``newton`` and ``batch`` sections return."""

    rows: list[list[Row]]  # one list per problem, one row per solver
    descriptions: dict[str, str]  # problem name -> description
    repeats: int
    budget: float
    elapsed: float
    chart: str | None = None  # file name of the chart written next to the report


def error_text(e: BaseException) -> str:
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


def warmup(solvers: dict[str, Callable], log: Callable) -> None:
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
            log(f"  warm-up {name}: {error_text(e)}")


def _record_failure(row: Row, where: str, e: Exception, options: Options) -> None:
    """A solver that raised becomes an "error: ..." row instead of ending the run."""
    row.error = error_text(e)
    options.log(f"  {where} {row.error}")
    if options.traceback:
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


def _steady(rows: dict[str, Row], runners: dict, x0s, repeats: int, budget_s: float, log: Callable) -> None:
    calls = {name: (lambda r=r: r(x0s)) for name, r in runners.items()}
    times, errors = interleaved_medians(calls, repeats, budget_s)
    for name, ts in times.items():
        if ts:
            rows[name].steady = median(ts)
            rows[name].n_steady = len(ts)
    for name, e in errors.items():
        rows[name].note = (rows[name].note + " steady " + error_text(e)).strip()
        log(f"  {rows[name].problem:18s} {name:12s} steady {error_text(e)}")


def _first_calls(row: Row, runner: R.Runner, problem: P.Problem, check: Callable) -> None:
    """The first call from the standard start, then one untimed call from the steady
    start (its statistics, and a check that it does not recompile)."""
    x0, x0s = jnp.asarray(problem.x0), jnp.asarray(problem.x0_steady)
    row.first, raw = timed_call(runner, x0)
    res = runner.result(raw)
    f, g = check(res.x)
    row.f, row.gnorm = float(np.max(f)), float(np.max(g))
    row.iters, row.nfev, row.ok, row.note, row.nhvp = res.iters, res.nfev, res.ok, res.note, res.nhvp
    if row.batch is not None:
        row.n_conv = int(np.sum(g <= P.GTOL))
    _, raw = timed_call(runner, x0s)
    res = runner.result(raw)
    _, g = check(res.x)
    row.gnorm_s, row.iters_s, row.nfev_s, row.nhvp_s = float(np.max(g)), res.iters, res.nfev, res.nhvp


def _log_first(row: Row, log: Callable) -> None:
    if row.batch is not None:
        log(f"  {row.problem:18s} {row.solver:16s} first {row.first:8.3f}s  its mean {np.mean(row.iters):.1f} "
            f"max {np.max(row.iters)}  max|g|inf {row.gnorm:.2e}  converged {row.n_conv}/{row.batch}")
        return
    hvp = "" if row.nhvp is None else f" hvp {row.nhvp:>6}"
    log(f"  {row.problem:18s} {row.solver:12s} first {row.first:8.3f}s  its {row.iters:>6} "
        f"nfev {row.nfev:>6}{hvp}  |g|inf {row.gnorm:.2e}  (steady start: its {row.iters_s}, "
        f"|g|inf {row.gnorm_s:.2e})")


def _floors(rows: dict[str, Row], problem: P.Problem) -> None:
    """jaxmin floor = steady-start evaluations x t_eval (+ HVPs x t_hvp)."""
    mine = [r for r in rows.values() if r.solver.startswith("jaxmin") and r.nfev_s is not None]
    if not mine:
        return
    try:
        t_eval = eval_time(problem.make_fun(), jnp.asarray(problem.x0_steady), problem.args)
        t_hvp = None
        if any(r.nhvp_s for r in mine):
            t_hvp = hvp_time(problem.make_fun(), jnp.asarray(problem.x0_steady), problem.args)
        for r in mine:
            r.floor = r.nfev_s * t_eval
            note = f"t_eval={t_eval * 1e6:.3g} µs"
            if t_hvp is not None and r.nhvp_s is not None:
                r.floor += r.nhvp_s * t_hvp
                note += f", t_hvp={t_hvp * 1e6:.3g} µs"
            r.note = (r.note + " " + note).strip()
    except Exception as e:  # noqa: BLE001
        for r in mine:
            r.note += f" floor {error_text(e)}"


def run_problem(
    problem: P.Problem,
    solvers: dict[str, Callable],
    repeats: int,
    budget_s: float,
    options: Options,
    ratio_reference: str | None = None,
) -> list[Row]:
    """First call + steady timings of every solver on one problem (a vmapped batch of
    problems when ``problem.x0`` has shape (batch, n)).

    ``ratio_reference`` (the Newton section: "scipy-ncg") makes the ratio column
    relative to that solver instead of the best peer.  A runner that raises
    ``runners.OverBudget`` (a SciPy Newton-type solve past its time limit) becomes a
    "skipped: over budget" row.  The jaxmin floor is computed for single problems.
    """
    batch = problem.x0.shape[0] if problem.x0.ndim == 2 else None
    check = _gnorm_fn(problem, batched=batch is not None)
    check(problem.x0)  # compile the checker outside any timing
    rows: dict[str, Row] = {}
    runners: dict[str, R.Runner] = {}
    for name, make in solvers.items():
        row = rows[name] = Row(problem.name, name, batch=batch)
        try:
            runner = make(problem)
            _first_calls(row, runner, problem, check)
            runners[name] = runner
            _log_first(row, options.log)
        except R.OverBudget as e:
            row.error = f"skipped: over budget ({e})"
            options.log(f"  {problem.name:18s} {name:12s} {row.error}")
        except Exception as e:  # noqa: BLE001
            _record_failure(row, f"{problem.name:18s} {name:12s}", e, options)
    _steady(rows, runners, jnp.asarray(problem.x0_steady), repeats, budget_s, options.log)
    if batch is None:
        _floors(rows, problem)
    out = list(rows.values())
    _set_ratios(out, ratio_reference)
    return out


def single_problems(options: Options) -> list[P.Problem]:
    """The single problems ``--only`` / ``--quick`` select, in report order."""
    if options.problems:
        return [P.get(n) for n in P.BUILDERS if options.selects(n)]
    return [P.get(n) for n in (P.QUICK if options.quick else P.BUILDERS)]


def run_section(
    registry: dict[str, Callable], problems: list[P.Problem], options: Options, *,
    repeats: int, budget: float, ratio_reference: str | None = None,
) -> HarnessResult:
    """Warm up the selected runners of ``registry``, then ``run_problem`` on each problem."""
    t_start = time.perf_counter()
    runners = {k: registry[k] for k in options.pick(tuple(registry))}
    rows, descriptions = [], {}
    if runners and any(p.x0.ndim == 1 for p in problems):  # (the warm-up problem is not a batch)
        options.log(f"  warm-up ({', '.join(runners)}) ...")
        warmup(runners, options.log)
    for problem in problems if runners else []:
        descriptions[problem.name] = problem.description
        options.log(f"[{problem.name}] {problem.description}")
        rows.append(run_problem(problem, runners, repeats, budget, options, ratio_reference))
    return HarnessResult(rows, descriptions, repeats, budget, time.perf_counter() - t_start)


@dataclasses.dataclass(frozen=True)
class HarnessSection:
    """A section of this harness (``lbfgs``, ``newton``, ``batch``): the runners of
    ``registry`` on the problems ``build(options)`` returns; steady repeats
    ``repeats`` (full, quick) unless ``--repeats``; a chart ``(suffix, title)``;
    ``render`` writes the Markdown of a non-empty result."""

    name: str
    registry: dict[str, Callable]
    problems: tuple[str, ...]
    build: Callable[[Options], list[P.Problem]]
    render: Callable[[HarnessResult], str]
    repeats: tuple[int, int]
    budget: float
    chart: tuple[str, str] | None = None
    ratio_reference: str | None = None

    @property
    def solvers(self) -> tuple[str, ...]:
        return tuple(self.registry)

    def run(self, options: Options) -> HarnessResult:
        result = run_section(self.registry, self.build(options), options, repeats=options.repeats_or(*self.repeats),
                             budget=options.budget_or(self.budget), ratio_reference=self.ratio_reference)
        if self.chart is not None:
            from .report import write_chart  # (report imports this module)

            write_chart(result, options, *self.chart)
        return result

    def markdown(self, result: HarnessResult) -> str:
        return self.render(result) if result.rows else ""
