"""The ``warm_start`` section: what ``minimize(..., warm_start=sol)`` buys in the outer
loops that re-solve nearly the same problem, against the peers' only option (a cold
solve from the previous ``x``).

- ``hyperparameters``: 100 outer Adam steps on per-feature L2 weights of a logistic
  regression (notebooks/02_meta_learning.ipynb's loop: inner ``LBFGS`` solve, the
  hypergradient by implicit differentiation); ``hyperparameters-lbfgs-50``: with a
  memory as long as ``n`` (50 pairs, not 10); ``hyperparameters-bfgs``: the same loop
  with dense ``BFGS`` inner solves, whose memory is the whole inverse-Hessian
  approximation; ``hyperparameters-bfgs-pcg``: that loop with the hypergradient's CG
  preconditioned by the final BFGS matrix (``jm.linear.CG(preconditioner="solver")``);
- ``continuation``: 100 solves along a portfolio frontier (SQP, one target return each:
  min wᵀΣw, sum(w) = 1, μᵀw ≥ r, w ≥ 0, as in notebooks/03_constrained.ipynb);
- ``chunks``: an ill-conditioned quadratic, n = 1000 (condition 10⁶, hundreds of
  L-BFGS steps) solved once, and stopped and resumed every 50 steps (iterates compared
  bit for bit). Each resumption is one jitted call (its matrix closed over: a constant,
  digested once while tracing) that starts from the earlier state without evaluating
  anything, and one read of the steps and reason back to the host;
  ``chunks-back-to-back``: the same resumptions dispatched one after the other with no
  read between them (the resumption of a solve that has ended takes no step), which
  separates jaxmin's cost per resumption from the host round trip;
- ``chunks-large`` (and its ``-back-to-back``): the same on a large problem, the
  quadratic's diagonal form with n = 30000 (a step of ~1 ms, not ~0.15 ms: the size of
  solve one stops and resumes).

The hyperparameter and continuation loops run whole inside one jitted ``lax.scan`` (the
fixed cost of a Python dispatch per outer step, the same for both variants, would hide
part of what a warm start saves, and its time is at the mercy of a loaded machine).
Counts are read back once at the end; times are medians of interleaved repeats of the
whole loop (``timing``), first calls excluded.
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
PROBLEMS = ("hyperparameters", "hyperparameters-lbfgs-50", "hyperparameters-bfgs", "hyperparameters-bfgs-pcg",
            "continuation", "chunks", "chunks-large")
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
def _logistic_data():
    """notebooks/02_meta_learning.ipynb's data: 50 features of which 5 matter, 100
    training and 300 validation samples."""
    n_features, n_informative = 50, 5
    k1, k2, k3 = jax.random.split(jax.random.key(0), 5)[:3]
    w_true = jnp.zeros(n_features).at[:n_informative].set(2.0 * jax.random.normal(k1, (n_informative,)))
    X = jax.random.normal(k2, (400, n_features))
    y = (jax.random.uniform(k3, (400,)) < jax.nn.sigmoid(X @ w_true)).astype(X.dtype)
    return X[:100], y[:100], X[100:], y[100:]


def _logistic(w, X, y):
    z = X @ w
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z)


def _train_loss(w, X, y, lam):
    return _logistic(w, X, y) + 0.5 * jnp.sum(lam * w**2)


def _hyper_loop(outer: int, solver, implicit_solver=None):
    """The notebook's loop: Adam (step 0.1) on per-feature log L2 weights from 1e-2,
    each outer step an inner solve from the previous solution, its hypergradient by
    implicit differentiation (`implicit_solver`: `minimize`'s), the update. The whole
    loop is one jitted `lax.scan` (no dispatch per outer step), its counts read back at
    the end."""
    X, y, Xv, yv = _logistic_data()
    b1, b2 = 0.9, 0.999

    def make_loop(warm: bool):
        def step(carry, t):
            log_lam, m, v, previous = carry

            def validation(log_lam):
                sol = jm.minimize(_train_loss, previous.x, solver, args=(X, y, jnp.exp(log_lam)),
                                  warm_start=previous if warm else None, implicit_solver=implicit_solver)
                return _logistic(sol.x, Xv, yv), sol

            (_, sol), g = jax.value_and_grad(validation, has_aux=True)(log_lam)
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2
            log_lam = log_lam - 0.1 * (m / (1 - b1**t)) / (jnp.sqrt(v / (1 - b2**t)) + 1e-8)
            return (log_lam, m, v, sol), (g, sol.num_steps, sol.num_fun_evals)

        return jax.jit(lambda carry: jax.lax.scan(step, carry, jnp.arange(1.0, outer + 1.0)))

    log_lam0 = jnp.full(X.shape[1], jnp.log(1e-2))
    start = jm.minimize(_train_loss, jnp.zeros(X.shape[1]), solver, args=(X, y, jnp.exp(log_lam0)))
    loops = {v: make_loop(v == "warm") for v in VARIANTS}
    zeros = jnp.zeros_like(log_lam0)

    def run(variant):
        (log_lam, *_), (g, steps, evals) = jax.device_get(loops[variant]((log_lam0, zeros, zeros, start)))
        return (np.asarray(log_lam), np.asarray(g)), *_loop_counts(variant, start, steps, evals)

    return run


def _loop_counts(variant, start, steps, evals) -> tuple[int, int]:
    """A loop's inner steps and evaluations from its solves' counts (read back once, at
    the end): `cold`, their sums; `warm`, the last's less the start's (a warm solve's
    counts continue the earlier solve's)."""
    if variant == "warm":
        return int(steps[-1] - start.num_steps), int(evals[-1] - start.num_fun_evals)
    return int(np.sum(steps)), int(np.sum(evals))


def _hyper_gap(warm, cold) -> str:
    (lam_w, g_w), (lam_c, g_c) = warm, cold
    g_gap = np.max(np.abs(g_w - g_c)) / np.max(np.abs(g_c))
    return f"max |Δ log λ| = {np.max(np.abs(lam_w - lam_c)):.1e}, hypergradients {g_gap:.1e} (relative)"


# ---------------------------------------------------------- continuation (SQP)
def _continuation_loop(count: int):
    n = 20
    rng = np.random.default_rng(3)
    mu = jnp.asarray(0.03 + 0.12 * rng.uniform(size=n))
    vol = 0.05 + 0.25 * rng.uniform(size=n)
    sigma = jnp.asarray((0.3 + 0.7 * np.eye(n)) * np.outer(vol, vol))
    targets = np.linspace(float(mu.min()) + 0.01, float(mu.max()) - 0.01, count)
    solver = jm.SQP()

    def risk(w, r):
        return w @ sigma @ w

    budget = lambda w, r: jnp.sum(w)[None] - 1.0  # noqa: E731
    reach = lambda w, r: (mu @ w - r)[None]  # noqa: E731

    def make_loop(warm: bool):
        def step(previous, r):
            sol = jm.minimize(risk, previous.x, solver, args=(r,), eq=budget, ineq=reach,
                              bounds=(0.0, 1.0), warm_start=previous if warm else None)
            return sol, (sol.x, sol.num_steps, sol.num_fun_evals)

        return jax.jit(lambda start: jax.lax.scan(step, start, jnp.asarray(targets))[1])

    start = jm.minimize(risk, jnp.full(n, 1.0 / n), solver, args=(targets[0],), eq=budget,
                        ineq=reach, bounds=(0.0, 1.0))
    loops = {v: make_loop(v == "warm") for v in VARIANTS}

    def run(variant):
        xs, steps, evals = (np.asarray(a) for a in jax.device_get(loops[variant](start)))
        return xs, *_loop_counts(variant, start, steps, evals)

    return run


def _x_gap(warm, cold) -> str:
    return f"max |Δw| = {np.max(np.abs(warm - cold)):.1e}"


# --------------------------------------------------------------------- chunks
def _chunk_loop(problem: P.Problem, chunk: int, total: int):
    fn, x0, args = problem.base, jnp.asarray(problem.x0), problem.args
    solver = jm.LBFGS()
    one = jax.jit(lambda x0: jm.minimize(fn, x0, solver, args, max_steps=total))
    first = jax.jit(lambda x0: jm.minimize(fn, x0, solver, args, max_steps=chunk))
    more = jax.jit(lambda sol: jm.minimize(fn, sol.x, solver, args, max_steps=chunk, warm_start=sol))

    def chunked():
        sol = first(x0)
        while True:
            steps, reason = jax.device_get((sol.num_steps, sol.reason))
            if steps >= total or reason != jm.Reason.MAX_STEPS:
                return sol
            sol = more(sol)

    def back_to_back():
        # no read between resumptions: the resumption of a finished solve takes no step
        sol = first(x0)
        for _ in range(-(-total // chunk) - 1):
            sol = more(sol)
        return sol

    return {"cold": lambda: one(x0), "warm": chunked, "back-to-back": back_to_back}


# row name -> problem: a solve of 1000 L-BFGS steps resumed every 50 (the first: a step
# of ~0.15 ms, where the round trip of each resumption shows; the second, ~1 ms)
CHUNKED = {"chunks": "quadratic-1000", "chunks-large": "diagonal-quadratic-30000"}


def _chunk_rows(name: str, problem: P.Problem, total: int, repeats: int, options: Options) -> list[Row]:
    """`name` (a read of the steps and reason after each chunk) and `name-back-to-back`
    (no read between resumptions) against one uninterrupted solve."""
    calls = _chunk_loop(problem, 50, total)
    out = {v: call() for v, call in calls.items()}
    times, _ = interleaved_medians(calls, repeats)
    what = f"{problem.description}; L-BFGS, {total} steps at most, resumed every 50"
    rows = []
    # warm: the steps and reason read back after every chunk; back-to-back: none read
    for row, warm, how in ((name, "warm", ", its steps and reason read back after each"),
                           (f"{name}-back-to-back", "back-to-back", ", all dispatched with no read between")):
        same = bool(jnp.all(out[warm].x == out["cold"].x))
        rows.append(Row(row, what + how,
                        {v: int(out[k].num_steps) for v, k in (("cold", "cold"), ("warm", warm))},
                        {v: int(out[k].num_fun_evals) for v, k in (("cold", "cold"), ("warm", warm))},
                        {v: median(times[k]) for v, k in (("cold", "cold"), ("warm", warm))},
                        "identical iterates" if same else "iterates differ"))
        options.log(f"warm_start {row}: {rows[-1]}")
    return rows


def _loop_row(name, description, loop, repeats, gap) -> Row:
    """Both variants of an outer loop: counts from a first run (which compiles), then
    interleaved timings of the whole loop; `gap(warm, cold)` compares the answers. The
    loop reads its counts back only at its end (no host sync per outer step)."""
    out = {v: loop(v) for v in VARIANTS}
    times, _ = interleaved_medians({v: (lambda v=v: loop(v)) for v in VARIANTS}, repeats)
    return Row(name, description, {v: out[v][1] for v in VARIANTS}, {v: out[v][2] for v in VARIANTS},
               {v: median(times[v]) for v in VARIANTS}, gap(out["warm"][0], out["cold"][0]))


# (name, inner solver, implicit_solver, what it adds to the row's description)
HYPER = (
    ("hyperparameters", jm.LBFGS(gtol=1e-8), None, ""),
    ("hyperparameters-lbfgs-50", jm.LBFGS(gtol=1e-8, history_size=50), None, "; L-BFGS memory of 50 pairs (= n)"),
    ("hyperparameters-bfgs", jm.BFGS(gtol=1e-8), None, ""),
    ("hyperparameters-bfgs-pcg", jm.BFGS(gtol=1e-8), jm.linear.CG(preconditioner="solver"),
     "; hypergradient CG preconditioned by BFGS's H"),
)


def run(options: Options) -> Result:
    rows: list[Row] = []
    if not options.pick(SOLVERS):
        return Result(rows)
    repeats = options.repeats_or(7, 1)
    quick = options.quick
    outer = 20 if quick else 100
    for name, solver, implicit, how in HYPER:
        if options.selects(name):
            what = f"{outer} Adam steps, {type(solver).__name__}(gtol=1e-8) inner solves, 50 features{how}"
            # a loop takes 0.02-0.3 s: 3x the repeats, for medians that hold on a loaded machine
            rows.append(_loop_row(name, what, _hyper_loop(outer, solver, implicit), 3 * repeats, _hyper_gap))
            options.log(f"warm_start {name}: {rows[-1]}")
    if options.selects("continuation"):
        count = 20 if quick else 100
        rows.append(_loop_row("continuation", f"{count} SQP solves along a frontier, 20 assets",
                              _continuation_loop(count), repeats, _x_gap))
        options.log(f"warm_start continuation: {rows[-1]}")
    for name, problem in CHUNKED.items():
        if options.selects(name):
            rows += _chunk_rows(name, P.get(problem), 200 if quick else 1000, repeats, options)
    return Result(rows)


def markdown(result: Result) -> str:
    if not result.rows:
        return ""
    lines = [
        "## Warm starts",
        "",
        "`cold`: each solve from the previous solution's `x` (the peers' option; for `chunks`, one "
        "uninterrupted solve); `warm`: `minimize(..., warm_start=previous)`. Inner steps and "
        "evaluations summed over the loop; time: median of interleaved repeats of the whole loop "
        "(`hyperparameters` and `continuation`: the whole loop in one jitted `lax.scan`; the "
        "`hyperparameters` loops three times the section's repeats).",
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
