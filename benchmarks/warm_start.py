"""The ``warm_start`` section: what ``minimize(..., warm_start=sol)`` buys in the outer
loops that re-solve nearly the same problem, against the peers' only option (a cold
solve from the previous ``x``).

- ``hyperparameters``: 100 outer gradient steps on per-feature L2 weights of a logistic
  regression (the model of notebooks/02_meta_learning.ipynb: inner L-BFGS solve, the
  hypergradient by implicit differentiation);
- ``continuation``: 100 solves along a portfolio frontier (SQP, one target return each:
  min wᵀΣw, sum(w) = 1, μᵀw ≥ r, w ≥ 0, as in notebooks/03_constrained.ipynb);
- ``chunks``: an ill-conditioned quadratic, n = 1000 (condition 10⁶, hundreds of
  L-BFGS steps) solved once, and stopped and resumed every 50 steps (iterates compared
  bit for bit).

Each loop is one jitted outer step called from Python; times are medians of interleaved
repeats of the whole loop (``timing``), first calls excluded.
"""

from __future__ import annotations

import dataclasses
import jax
import jax.numpy as jnp
import numpy as np

import jaxmin as jm

from . import problems as P
from .protocol import FunctionSection, Options
from .timing import interleaved_medians, median

SOLVERS = ("jaxmin",)
PROBLEMS = ("hyperparameters", "continuation", "chunks")
VARIANTS = ("cold", "warm")  # cold: from the previous x (the peers' option); warm: warm_start


@dataclasses.dataclass
class Row:
    problem: str
    description: str
    steps: dict[str, int]
    evals: dict[str, int]
    times: dict[str, float]
    agree: str  # how the variants' answers compare


@dataclasses.dataclass
class Result:
    rows: list[Row]


# ------------------------------------------------------------ hyperparameter loop
def _logistic_data(n_features=20, n_samples=400, seed=0):
    rng = np.random.default_rng(seed)
    w_true = rng.standard_normal(n_features) * (rng.uniform(size=n_features) < 0.3)
    X = rng.standard_normal((2 * n_samples, n_features))
    y = (rng.uniform(size=2 * n_samples) < 1 / (1 + np.exp(-X @ w_true))).astype(float)
    return tuple(jnp.asarray(a) for a in (X[:n_samples], y[:n_samples], X[n_samples:], y[n_samples:]))


def _train_loss(w, log_lam, X, y):
    z = X @ w
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z) + 0.5 * jnp.sum(jnp.exp(log_lam) * w**2)


def _val_loss(w, X, y):
    z = X @ w
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z)


def _hyper_loop(outer: int):
    X, y, Xv, yv = _logistic_data()
    solver = jm.LBFGS(gtol=1e-8)

    def make_step(warm: bool):
        @jax.jit
        def step(log_lam, previous):
            def validation(log_lam):
                sol = jm.minimize(_train_loss, previous.x, solver, args=(log_lam, X, y),
                                  warm_start=previous if warm else None)
                return _val_loss(sol.x, Xv, yv), sol

            (_, sol), g = jax.value_and_grad(validation, has_aux=True)(log_lam)
            return log_lam - 2.0 * g, sol

        return step

    log_lam0 = jnp.zeros(X.shape[1])
    start = jm.minimize(_train_loss, jnp.zeros(X.shape[1]), solver, args=(log_lam0, X, y))

    def run(step):
        log_lam, sol, steps, evals = log_lam0, start, 0, 0
        for _ in range(outer):
            before = (int(sol.num_steps), int(sol.num_fun_evals)) if step is steps_of["warm"] else (0, 0)
            log_lam, sol = step(log_lam, sol)
            steps += int(sol.num_steps) - before[0]
            evals += int(sol.num_fun_evals) - before[1]
        return log_lam, steps, evals

    steps_of = {v: make_step(v == "warm") for v in VARIANTS}
    return steps_of, run


# ---------------------------------------------------------- continuation (SQP)
def _continuation_loop(count: int):
    n = 20
    rng = np.random.default_rng(3)
    mu = jnp.asarray(0.03 + 0.12 * rng.uniform(size=n))
    vol = 0.05 + 0.25 * rng.uniform(size=n)
    sigma = jnp.asarray((0.3 + 0.7 * np.eye(n)) * np.outer(vol, vol))
    targets = jnp.linspace(float(mu.min()) + 0.01, float(mu.max()) - 0.01, count)
    solver = jm.SQP()

    def risk(w, r):
        return w @ sigma @ w

    budget = lambda w, r: jnp.sum(w)[None] - 1.0  # noqa: E731
    reach = lambda w, r: (mu @ w - r)[None]  # noqa: E731

    def make_step(warm: bool):
        @jax.jit
        def step(r, previous):
            return jm.minimize(risk, previous.x, solver, args=(r,), eq=budget, ineq=reach,
                               bounds=(0.0, 1.0), warm_start=previous if warm else None)

        return step

    start = jm.minimize(risk, jnp.full(n, 1.0 / n), solver, args=(targets[0],), eq=budget,
                        ineq=reach, bounds=(0.0, 1.0))

    def run(step):
        sol, steps, evals, xs = start, 0, 0, []
        for r in targets:
            before = (int(sol.num_steps), int(sol.num_fun_evals)) if step is steps_of["warm"] else (0, 0)
            sol = step(r, sol)
            steps += int(sol.num_steps) - before[0]
            evals += int(sol.num_fun_evals) - before[1]
            xs.append(np.asarray(sol.x))
        return np.array(xs), steps, evals

    steps_of = {v: make_step(v == "warm") for v in VARIANTS}
    return steps_of, run


# --------------------------------------------------------------------- chunks
def _chunk_loop(chunk: int, total: int):
    problem = P.get("quadratic-1000")
    fn, x0, args = problem.base, jnp.asarray(problem.x0), problem.args
    solver = jm.LBFGS()
    one = jax.jit(lambda x0: jm.minimize(fn, x0, solver, args, max_steps=total))
    first = jax.jit(lambda x0: jm.minimize(fn, x0, solver, args, max_steps=chunk))
    more = jax.jit(lambda sol: jm.minimize(fn, sol.x, solver, args, max_steps=chunk, warm_start=sol))

    def chunked():
        sol = first(x0)
        while int(sol.num_steps) < total and int(sol.reason) == int(jm.Reason.MAX_STEPS):
            sol = more(sol)
        return sol

    return {"cold": lambda: one(x0), "warm": chunked}


def _loop_row(name, description, steps_of, loop, repeats, gap_name) -> Row:
    """Both variants of an outer loop: counts from a first run (which compiles), then
    interleaved timings of the whole loop; the answers' largest difference."""
    out = {v: loop(steps_of[v]) for v in VARIANTS}
    times, _ = interleaved_medians({v: (lambda v=v: loop(steps_of[v])) for v in VARIANTS}, repeats)
    gap = float(np.max(np.abs(np.asarray(out["warm"][0]) - np.asarray(out["cold"][0]))))
    return Row(name, description, {v: out[v][1] for v in VARIANTS}, {v: out[v][2] for v in VARIANTS},
               {v: median(times[v]) for v in VARIANTS}, f"{gap_name} = {gap:.1e}")


def run(options: Options) -> Result:
    rows: list[Row] = []
    if not options.pick(SOLVERS):
        return Result(rows)
    repeats = options.repeats_or(3, 1)
    quick = options.quick
    if options.selects("hyperparameters"):
        outer = 20 if quick else 100
        rows.append(_loop_row("hyperparameters", f"{outer} outer steps, L-BFGS inner solves, 20 features",
                              *_hyper_loop(outer), repeats, "max |Δ log λ|"))
        options.log(f"warm_start hyperparameters: {rows[-1]}")
    if options.selects("continuation"):
        count = 20 if quick else 100
        rows.append(_loop_row("continuation", f"{count} SQP solves along a frontier, 20 assets",
                              *_continuation_loop(count), repeats, "max |Δw|"))
        options.log(f"warm_start continuation: {rows[-1]}")
    if options.selects("chunks"):
        total = 200 if quick else 1000
        calls = _chunk_loop(50, total)
        out = {v: calls[v]() for v in VARIANTS}
        times, _ = interleaved_medians(calls, repeats)
        same = bool(jnp.all(out["warm"].x == out["cold"].x))
        rows.append(Row("chunks", f"{P.get('quadratic-1000').description}; L-BFGS, {total} steps at most, resumed every 50",
                        {v: int(out[v].num_steps) for v in VARIANTS},
                        {v: int(out[v].num_fun_evals) for v in VARIANTS},
                        {v: median(times[v]) for v in VARIANTS},
                        "identical iterates" if same else "iterates differ"))
        options.log(f"warm_start chunks: {rows[-1]}")
    return Result(rows)


def markdown(result: Result) -> str:
    if not result.rows:
        return ""
    lines = [
        "## Warm starts",
        "",
        "`cold`: each solve from the previous solution's `x` (the peers' option; for `chunks`, one "
        "uninterrupted solve); `warm`: `minimize(..., warm_start=previous)`. Inner steps and "
        "evaluations summed over the loop; time: median of interleaved repeats of the whole loop.",
        "",
        "| loop | what | steps cold | steps warm | evals cold | evals warm | evals cold/warm "
        "| time cold | time warm | time cold/warm | answers |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result.rows:
        lines.append(
            f"| {r.problem} | {r.description} | {r.steps['cold']} | {r.steps['warm']} | {r.evals['cold']} | "
            f"{r.evals['warm']} | {r.evals['cold'] / max(r.evals['warm'], 1):.2f} | {r.times['cold']:.3f} s | "
            f"{r.times['warm']:.3f} s | {r.times['cold'] / r.times['warm']:.2f} | {r.agree} |"
        )
    return "\n".join(lines) + "\n"


SECTION = FunctionSection("warm_start", SOLVERS, PROBLEMS, run, markdown)
