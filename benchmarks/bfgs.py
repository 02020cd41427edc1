"""The ``bfgs`` section: jaxmin ``BFGS`` against Optimistix ``BFGS``, JAXopt ``BFGS``
and SciPy ``BFGS`` on single extended-Rosenbrock problems (n = 2 ... 200) and on
``jax.vmap`` batches of Rosenbrock n=2 problems (10 ... 10^4 members, each from its
own start; SciPy solves the members one after the other in a Python loop).

The JAX solvers' *first call* per problem (trace + compile + run, ``timing.timed_call``)
is of a fresh objective closure, so no tracing cache keyed on the function helps it
(after one throwaway solve per solver, which keeps a library's one-off initialisation
out of the first problem's).
Every solve runs in float64 from a start it has not been compiled for (the steady
start); the harness recomputes ‖∇f‖∞ at the returned x and marks a solve ✓ when it
is at most ``GTOL``. Times are medians of interleaved repeats (``timing``).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

import jaxmin as jm

from . import problems as P
from . import runners as R
from .protocol import FunctionSection, Options
from .report import fmt_time
from .timing import interleaved_medians, median, timed_call

SOLVERS = ("jaxmin", "optimistix", "jaxopt", "scipy")
SINGLE_N = (2, 10, 50, 200)
BATCHES = (10, 100, 1000, 10_000)
# SciPy's Python loop over members is timed only up to this batch size
SCIPY_MAX_BATCH = 1000
# seconds of timing per solver and problem after which its repeats stop (JAXopt's vmapped
# BFGS took 82 s per call for 1000 members)
BUDGET_S = 30.0
# JAXopt's vmapped BFGS is run up to this batch size (45-82 s per call at 1000 members;
# at 10^4 one call had not returned after 20 minutes)
JAXOPT_MAX_BATCH = 1000


@dataclasses.dataclass
class Row:
    """One problem: per solver, steady seconds, evaluations (per member: median) and
    whether every member met the target."""

    problem: str
    times: dict[str, float]
    evals: dict[str, float]
    met: dict[str, bool]
    notes: dict[str, str] = dataclasses.field(default_factory=dict)
    first: dict[str, float] = dataclasses.field(default_factory=dict)  # JAX solvers: trace + compile + run


@dataclasses.dataclass
class Result:
    rows: list[Row]
    repeats: int
    elapsed: float


def rosenbrock(x):
    return P.extended_rosenbrock(x)


def _starts(n: int, size: int | None, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.tile([-1.2, 1.0], n // 2)
    shape = (n,) if size is None else (size, n)
    return base + 0.1 * rng.standard_normal(shape)


def _jax_solver(name: str) -> Callable:
    """`solve(x0) -> (x, evals)` for one JAX solver (vmappable), of a fresh closure of the
    objective (its first call is not helped by caches keyed on the function)."""

    def rosenbrock(x):
        return P.extended_rosenbrock(x)

    if name == "jaxmin":
        solver = jm.BFGS(gtol=P.GTOL)
        return lambda x0: (lambda s: (s.x, s.num_fun_evals))(jm.minimize(rosenbrock, x0, solver, max_steps=P.MAXITER))
    if name == "optimistix":
        import optimistix as optx

        solver = optx.BFGS(rtol=R.OPTX_TOL_BATCH, atol=R.OPTX_TOL_BATCH)

        def solve(x0):
            sol = optx.minimise(lambda y, _: rosenbrock(y), solver, x0, max_steps=P.MAXITER, throw=False)
            return sol.value, sol.stats["num_steps"]

        return solve
    import jaxopt

    solver = jaxopt.BFGS(rosenbrock, tol=P.GTOL, maxiter=P.MAXITER)

    def solve(x0):
        x, state = solver.run(x0)
        return x, getattr(state, "num_fun_eval", state.iter_num)

    return solve


_VALUE_AND_GRAD = jax.jit(jax.value_and_grad(rosenbrock))


def _scipy_solve(starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fun = lambda x: tuple(np.asarray(v, np.float64) for v in _VALUE_AND_GRAD(jnp.asarray(x)))  # noqa: E731
    xs, evals = [], []
    for x0 in np.atleast_2d(starts):
        res = scipy.optimize.minimize(fun, x0, jac=True, method="BFGS", options=dict(gtol=P.GTOL, maxiter=P.MAXITER))
        xs.append(res.x)
        evals.append(res.nfev)
    return np.asarray(xs), np.asarray(evals)


def _met(xs) -> bool:
    g = jax.vmap(jax.grad(rosenbrock))(jnp.atleast_2d(jnp.asarray(xs)))
    return bool(jnp.all(jnp.max(jnp.abs(g), axis=-1) <= P.GTOL))


def measure(label: str, starts: np.ndarray, steady: np.ndarray, solvers, repeats: int,
            scipy_ok: bool, log, skip: dict[str, str] | None = None) -> Row:
    """Compile each JAX solver on `starts`, then time all on `steady`, interleaved;
    `skip`: solvers not run, with the reason."""
    batched = starts.ndim == 2
    calls, first = {}, {}
    skip = skip or {}
    for name in solvers:
        if name in skip:
            continue
        if name == "scipy":
            if scipy_ok:
                calls[name] = lambda s=steady: _scipy_solve(s)
            continue
        solve = _jax_solver(name)
        fn = jax.jit(jax.vmap(solve) if batched else solve)
        first[name], _ = timed_call(fn, jnp.asarray(starts))  # trace + compile + run
        calls[name] = lambda fn=fn: fn(jnp.asarray(steady))
    # SciPy is timed in its own round: interleaved with its long Python loops, the
    # short JAX calls after it were measured several times slower on a loaded machine
    jax_calls = {k: c for k, c in calls.items() if k != "scipy"}
    times, errors = interleaved_medians(jax_calls, repeats, budget_s=BUDGET_S)
    if "scipy" in calls:
        t, e = interleaved_medians({"scipy": calls["scipy"]}, repeats, budget_s=BUDGET_S)
        times.update(t)
        errors.update(e)
    row = Row(label, {}, {}, {}, notes=dict(skip), first=first)
    for name in calls:
        if name in errors:
            row.notes[name] = f"error: {type(errors[name]).__name__}"
            continue
        xs, evals = calls[name]()
        row.times[name] = median(times[name])
        row.evals[name] = float(np.median(np.asarray(evals)))
        row.met[name] = _met(xs)
    log(f"  bfgs {label}: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in row.times.items())
        + "; first calls " + ", ".join(f"{k} {v:.2f} s" for k, v in first.items()))
    return row


def warm_up(solvers) -> None:
    """One throwaway solve per JAX solver (n = 2, a start used nowhere else), so that a
    library's one-off initialisation is not charged to the first problem's first call."""
    for name in solvers:
        if name != "scipy":
            jax.block_until_ready(jax.jit(_jax_solver(name))(jnp.asarray(_starts(2, None, 99))))


def run(options: Options) -> Result:
    start = time.perf_counter()
    solvers = options.pick(SOLVERS)
    repeats = options.repeats_or(7, 3)
    warm_up(solvers)
    rows = []
    for n in (2, 10) if options.quick else SINGLE_N:
        name = f"rosenbrock-{n}"
        if solvers and options.selects(name):
            rows.append(measure(name, _starts(n, None, 0), _starts(n, None, 1), solvers, repeats, True, options.log))
    sizes = (options.batch_size,) if options.batch_size else ((10, 1000, 10_000) if options.quick else BATCHES)
    for size in sizes:
        name = f"batch-rosenbrock-2x{size}"
        if solvers and options.selects(name):
            scipy_max = 100 if options.quick else SCIPY_MAX_BATCH
            skip = {} if size <= JAXOPT_MAX_BATCH else {"jaxopt": "not run (over 20 min per call)"}
            rows.append(measure(name, _starts(2, size, 0), _starts(2, size, 1), solvers, repeats,
                                size <= scipy_max, options.log, skip))
    return Result(rows, repeats, time.perf_counter() - start)


def first_call_cells(first: dict[str, float], jax_solvers: tuple[str, ...]) -> str:
    """`a / b / c | ratio`: the JAX solvers' first calls and jaxmin's over the fastest
    JAX peer's (– where not measured)."""
    peers = [first[s] for s in jax_solvers if s != "jaxmin" and s in first]
    ratio = f"{first['jaxmin'] / min(peers):.2f}" if peers and "jaxmin" in first else "–"
    return " / ".join(fmt_time(first.get(s)) for s in jax_solvers) + f" | {ratio}"


def table(rows: list[Row], solvers=SOLVERS) -> str:
    """Steady times (ms), evaluations, ✓/✗ for the target, and jaxmin's ratio to the
    fastest peer that met the target; the JAX solvers' first calls and jaxmin's ratio to
    the fastest JAX peer's."""
    jax_solvers = tuple(s for s in solvers if s != "scipy")
    head = ("| problem | " + " | ".join(f"{s} ms (evals)" for s in solvers) + " | jaxmin / best peer | first call "
            + " / ".join(jax_solvers) + " | first call jaxmin / best JAX peer |\n")
    lines = [head, "|---" * (len(solvers) + 4) + "|\n"]
    for row in rows:
        cells = []
        for s in solvers:
            if s in row.times:
                mark = "✓" if row.met[s] else "✗"
                cells.append(f"{row.times[s] * 1e3:.2f} ({row.evals[s]:.0f}) {mark}")
            else:
                cells.append(row.notes.get(s, "–"))
        peers = [row.times[s] for s in row.times if s != "jaxmin" and row.met[s]]
        ratio = f"{row.times['jaxmin'] / min(peers):.2f}" if peers and "jaxmin" in row.times else "–"
        lines.append(f"| {row.problem} | " + " | ".join(cells) + f" | {ratio} | "
                     + first_call_cells(row.first, jax_solvers) + " |\n")
    return "".join(lines)


def markdown(result: Result) -> str:
    if not result.rows:
        return ""
    return "".join([
        "\n## BFGS: single problems and vmapped batches\n\n",
        f"Extended Rosenbrock from (-1.2, 1, ...) + 0.1·N(0, I) (steady start, seed 1; compiled on seed 0), "
        f"float64, target ‖∇f‖∞ ≤ {P.GTOL:g} (recomputed: ✓/✗), at most {P.MAXITER} iterations. jaxmin "
        f"`BFGS(gtol={P.GTOL:g})`; Optimistix `BFGS(rtol=atol={R.OPTX_TOL_BATCH:g})`; JAXopt `BFGS(tol="
        f"{P.GTOL:g})` (on ‖g‖₂); SciPy `BFGS(gtol={P.GTOL:g})`, a Python loop over batch members "
        f"(up to {SCIPY_MAX_BATCH} members; 100 with `--quick`). JAX solvers: `jax.jit` (of `jax.vmap` for batches). Evaluations: "
        f"per member, median. Steady = median of {result.repeats} interleaved calls. *First call*: one "
        f"call of a fresh objective closure (trace + compile + run, on the seed-0 start; after one "
        f"throwaway solve per solver, which keeps one-off initialisation out of it). Section wall time "
        f"{result.elapsed:.0f} s.\n\n",
        table(result.rows),
    ])


SECTION = FunctionSection(
    "bfgs", SOLVERS,
    tuple(f"rosenbrock-{n}" for n in SINGLE_N) + tuple(f"batch-rosenbrock-2x{b}" for b in BATCHES),
    run, markdown,
)
