"""The ``least_squares`` section: ``jm.least_squares`` (Levenberg–Marquardt) against
SciPy ``least_squares`` (``lm``: MINPACK ``lmder``; ``trf``), Optimistix
``LevenbergMarquardt`` and JAXopt ``LevenbergMarquardt``

- on the Moré–Garbow–Hillstrom problems of ``jaxmin.testing`` as least squares (each
  from its standard start; solved = `|r|^2` within 1e-5 (relative) + 1e-7 of the
  published optimum), and
- on a batched curve fit: exponential decays `a exp(-k t) + c` fitted to 20 noisy
  samples each, one fit per "pixel", under ``jax.vmap`` (SciPy: a Python loop over a
  sample of the fits, its throughput extrapolated).

The JAX solvers' *first call* per problem (trace + compile + run, ``timing.timed_call``)
is of a fresh closure of the residuals, so no tracing cache keyed on the function helps
it (after one throwaway fit per solver, which keeps a library's one-off initialisation
out of the first problem's).

Float64 throughout; SciPy gets the exact Jacobian (JAX, jitted) so that ``lm`` runs
MINPACK's ``lmder``. Evaluations: residual evaluations (SciPy ``nfev``; Optimistix
steps; JAXopt iterations; jaxmin ``num_fun_evals``).
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from jax.flatten_util import ravel_pytree

import jaxmin as jm
from jaxmin.testing import MGH_PROBLEMS

from .bfgs import first_call_cells
from .protocol import FunctionSection, Options
from .report import fmt_time
from .timing import interleaved_medians, median, timed_call

SOLVERS = ("jaxmin", "scipy-lm", "scipy-trf", "optimistix", "jaxopt")
QUICK_MGH = ("rosenbrock", "helical_valley", "bard", "kowalik_osborne", "osborne1", "watson6")
BATCH = 10_000
SCIPY_BATCH_SAMPLE = 200
TOL = 1e-8  # Optimistix rtol = atol; SciPy's own defaults (ftol = xtol = gtol = 1e-8)
GTOL = 1e-8  # jaxmin gtol (max|J^T r|); JAXopt tol (on |J^T r|_2): SciPy-like accuracy
MAXITER = 1000


@dataclasses.dataclass
class Result:
    mgh: list[dict]  # per problem: {solver: (seconds, evals, solved)}
    names: list[str]
    batch: dict  # {solver: (seconds per fit, solved share, evals median)}
    first: dict  # {problem name or "batch-decay": {JAX solver: first-call seconds}}
    batch_size: int
    repeats: int
    elapsed: float


def _flat(problem):
    return lambda x: ravel_pytree(problem.fn.residuals(x))[0]


def _jax_fit(name: str, residuals):
    """`solve(x0, *args) -> (x, evals)` for one JAX solver; `residuals(x, *args)`."""
    if name == "jaxmin":
        solver = jm.LevenbergMarquardt(gtol=GTOL)
        return lambda x0, *a: (lambda s: (s.x, s.num_fun_evals))(
            jm.least_squares(residuals, x0, solver, args=a, max_steps=MAXITER))
    if name == "optimistix":
        import optimistix as optx

        solver = optx.LevenbergMarquardt(rtol=TOL, atol=TOL)

        def solve(x0, *a):
            sol = optx.least_squares(lambda y, a: residuals(y, *a), solver, x0, args=a,
                                     max_steps=MAXITER, throw=False)
            return sol.value, sol.stats["num_steps"]

        return solve
    import jaxopt

    solver = jaxopt.LevenbergMarquardt(residuals, tol=GTOL, maxiter=MAXITER)

    def solve(x0, *a):
        x, state = solver.run(x0, *a)
        return x, state.iter_num

    return solve


def _scipy_fit(method, residuals):
    # compiled once per problem, outside the timed calls
    r = jax.jit(residuals)
    J = jax.jit(jax.jacfwd(residuals))

    def solve(x0, *a):
        res = scipy.optimize.least_squares(lambda x: np.asarray(r(jnp.asarray(x), *a)), np.asarray(x0),
                                           jac=lambda x: np.asarray(J(jnp.asarray(x), *a)), method=method)
        return res.x, res.nfev

    return solve


def _timed(calls: dict, repeats: int):
    """Interleaved medians, the JAX solvers in one round and SciPy's in another (short
    JAX calls right after SciPy's long Python loops were measured slower on a loaded
    machine)."""
    jax_calls = {k: c for k, c in calls.items() if not k.startswith("scipy")}
    times, errors = interleaved_medians(jax_calls, repeats)
    t, e = interleaved_medians({k: c for k, c in calls.items() if k.startswith("scipy")}, repeats)
    return {**times, **t}, {**errors, **e}


def _fresh(residuals):
    """A new function object calling `residuals` (defeats caches keyed on the function)."""
    return lambda *a: residuals(*a)


def _solvers(selected, residuals, batched=False):
    """Per solver, the call to time: SciPy's fit, or a JAX solver's jitted fit of its own
    fresh closure of `residuals`."""
    calls = {}
    for name in selected:
        if name.startswith("scipy"):
            calls[name] = _scipy_fit(name.split("-")[1], residuals)
        else:
            fit = _jax_fit(name, _fresh(residuals))
            calls[name] = jax.jit(jax.vmap(fit) if batched else fit)
    return calls


def _first_calls(fits: dict, *a) -> tuple[dict, dict]:
    """Every fit's first call on `a` (outputs); the JAX solvers' times (trace + compile +
    run; SciPy's callables are compiled on theirs)."""
    outs, first = {}, {}
    for s, fit in fits.items():
        t, outs[s] = timed_call(fit, *a)
        if not s.startswith("scipy"):
            first[s] = t
    return outs, first


def run_mgh(names, solvers, repeats, log, firsts: dict) -> list[dict]:
    rows = []
    problems = {p.name: p for p in MGH_PROBLEMS}
    for name in names:
        p = problems[name]
        residuals, x0 = _flat(p), jnp.asarray(p.x0)
        fits = _solvers(solvers, residuals)
        outs, firsts[name] = _first_calls(fits, x0)
        times, errors = _timed({s: (lambda f=f: f(x0)) for s, f in fits.items()}, repeats)
        row = {}
        for s, (x, evals) in outs.items():
            f = float(jnp.sum(residuals(jnp.asarray(x)) ** 2))
            solved = abs(f - p.f_star) <= 1e-5 * abs(p.f_star) + 1e-7
            row[s] = (median(times[s]), int(evals), solved) if s not in errors else (float("nan"), 0, False)
        log(f"  least_squares {name}: " + ", ".join(f"{s} {v[0] * 1e3:.2f} ms {v[1]} ev {'ok' if v[2] else 'FAIL'}"
                                                    for s, v in row.items())
            + "; first calls " + ", ".join(f"{s} {t:.2f} s" for s, t in firsts[name].items()))
        rows.append(row)
    return rows


def decay(theta, t, y):
    """Residuals of the model `a exp(-k t) + c` against samples `y` at times `t`."""
    a, k, c = theta[0], theta[1], theta[2]
    return a * jnp.exp(-k * t) + c - y


def batch_data(size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 5.0, 20)
    a, k, c = rng.uniform(0.5, 2.0, size), rng.uniform(0.2, 2.0, size), rng.uniform(-0.1, 0.1, size)
    y = a[:, None] * np.exp(-k[:, None] * t) + c[:, None] + 0.01 * rng.standard_normal((size, 20))
    return jnp.asarray(t), jnp.asarray(y)


def run_batch(size, solvers, repeats, log, firsts: dict, quick=False) -> dict:
    t, ys = batch_data(size)
    x0 = jnp.tile(jnp.array([1.0, 1.0, 0.0]), (size, 1))
    # the reference optimum of each fit: a tight jaxmin solve
    ref = jax.jit(jax.vmap(lambda x0, y: jm.least_squares(decay, x0, jm.LevenbergMarquardt(gtol=1e-12),
                                                          args=(t, y), max_steps=MAXITER).fun))(x0, ys)
    ts = jnp.broadcast_to(t, ys.shape)
    out, calls, firsts["batch-decay"] = {}, {}, {}
    for s in solvers:
        if s.startswith("scipy"):
            fit = _scipy_fit(s.split("-")[1], decay)
            fit(x0[0], t, ys[0])  # compiles the residuals and Jacobian
            k = min(size, SCIPY_BATCH_SAMPLE // (4 if quick else 1))
            calls[s] = (lambda fit=fit, k=k: [fit(x0[i], t, ys[i]) for i in range(k)]), k
        else:
            fit = jax.jit(jax.vmap(_jax_fit(s, _fresh(decay))))
            firsts["batch-decay"][s], _ = timed_call(fit, x0, ts, ys)  # trace + compile + run
            calls[s] = (lambda fit=fit: fit(x0, ts, ys)), size
    times, errors = _timed({s: c for s, (c, _) in calls.items()}, repeats)
    for s, (call, k) in calls.items():
        if s in errors:
            continue
        res = call()
        xs, evals = (np.stack([r[0] for r in res]), np.array([r[1] for r in res])) if s.startswith("scipy") else res
        f = 0.5 * jnp.sum(jax.vmap(decay)(jnp.asarray(xs), ts[:k], ys[:k]) ** 2, axis=-1)
        solved = float(jnp.mean(f <= ref[:k] * (1 + 1e-6) + 1e-12))
        out[s] = (median(times[s]) / k, solved, float(np.median(np.asarray(evals))))
        log(f"  least_squares batch {s}: {out[s][0] * 1e6:.2f} us/fit, solved {solved:.3f}")
    return out


def _warm_up(solvers) -> None:
    """One throwaway fit per JAX solver (one decay curve), so that a library's one-off
    initialisation is not charged to the first problem's first call."""
    t, ys = batch_data(1, seed=99)
    for s in solvers:
        if not s.startswith("scipy"):
            jax.block_until_ready(jax.jit(_jax_fit(s, _fresh(decay)))(jnp.array([1.0, 1.0, 0.0]), t, ys[0]))


def run(options: Options) -> Result:
    start = time.perf_counter()
    solvers = options.pick(SOLVERS)
    repeats = options.repeats_or(5, 3)
    names = [n for n in (QUICK_MGH if options.quick else [p.name for p in MGH_PROBLEMS]) if options.selects(n)]
    _warm_up(solvers)
    firsts: dict = {}
    mgh = run_mgh(names, solvers, repeats, options.log, firsts) if solvers else []
    size = options.batch_size or BATCH
    batch = (run_batch(size, solvers, repeats, options.log, firsts, options.quick)
             if solvers and options.selects("batch-decay") else {})
    return Result(mgh, names, batch, firsts, size, repeats, time.perf_counter() - start)


JAX_SOLVERS = tuple(s for s in SOLVERS if not s.startswith("scipy"))


def _mgh_table(result: Result) -> str:
    solvers = list(result.mgh[0]) if result.mgh else []
    lines = ["| problem | " + " | ".join(f"{s} ms (evals)" for s in solvers) + " | jaxmin / best JAX peer | first call "
             + " / ".join(JAX_SOLVERS) + " | first call jaxmin / best JAX peer |\n",
             "|---" * (len(solvers) + 4) + "|\n"]
    for name, row in zip(result.names, result.mgh):
        cells = [f"{t * 1e3:.2f} ({e}) {'✓' if ok else '✗'}" for t, e, ok in row.values()]
        peers = [row[s][0] for s in ("optimistix", "jaxopt") if s in row and row[s][2]]
        ratio = f"{row['jaxmin'][0] / min(peers):.2f}" if peers and "jaxmin" in row else "–"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {ratio} | "
                     + first_call_cells(result.first.get(name, {}), JAX_SOLVERS) + " |\n")
    solved = {s: sum(row[s][2] for row in result.mgh) for s in solvers}
    evals = {s: np.median([row[s][1] for row in result.mgh]) for s in solvers}
    lines.append("| **solved / median evals** | " + " | ".join(f"{solved[s]}/{len(result.mgh)}, {evals[s]:g}"
                                                            for s in solvers) + " | | | |\n")
    return "".join(lines)


def _batch_table(result: Result) -> str:
    lines = ["| solver | µs per fit | fits/s | solved | evals (median) | jaxmin speed-up | first call "
             "| first call ÷ jaxmin's |\n", "|---|---|---|---|---|---|---|---|\n"]
    ours = result.batch.get("jaxmin", (float("nan"),))[0]
    first = result.first.get("batch-decay", {})
    for s, (sec, solved, evals) in result.batch.items():
        ratio = f"{first[s] / first['jaxmin']:.2f}" if s in first and "jaxmin" in first else "–"
        lines.append(f"| {s} | {sec * 1e6:.2f} | {1 / sec:,.0f} | {solved:.3f} | {evals:g} | {sec / ours:.2f}× | "
                     f"{fmt_time(first.get(s))} | {ratio} |\n")
    return "".join(lines)


def markdown(result: Result) -> str:
    if not result.mgh and not result.batch:
        return ""
    parts = ["\n## Nonlinear least squares\n\n", __doc__.split("\n\n", 1)[1].replace("``", "`"), "\n",
             f"jaxmin `LevenbergMarquardt(gtol={GTOL:g})`; Optimistix `LevenbergMarquardt(rtol=atol={TOL:g})`; "
             f"JAXopt `LevenbergMarquardt(tol={GTOL:g}, maxiter={MAXITER})`; SciPy defaults. Steady = median of "
             f"{result.repeats} interleaved calls. Section wall time {result.elapsed:.0f} s.\n\n"]
    if result.mgh:
        parts += ["### MGH problems\n\n", _mgh_table(result), "\n"]
    if result.batch:
        parts += [f"### Batched curve fit: {result.batch_size} exponential decays (m = 20, n = 3)\n\n",
                  f"SciPy: a loop over the first {SCIPY_BATCH_SAMPLE} fits ({SCIPY_BATCH_SAMPLE // 4} with `--quick`). Solved = `|r|^2/2` within 1e-6 "
                  "(relative) of a tight jaxmin solve.\n\n", _batch_table(result)]
    return "".join(parts)


SECTION = FunctionSection("least_squares", SOLVERS,
                          tuple(p.name for p in MGH_PROBLEMS) + ("batch-decay",), run, markdown)
