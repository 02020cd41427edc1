"""The ``bounds`` section: L-BFGS-B, jaxmin (`jm.LBFGS` with `bounds=`) against SciPy's
L-BFGS-B and JAXopt's `LBFGSB`.

Problems (float64): the Hock–Schittkowski bound-only problems (tests/hs_bounds.py,
standard starts, projected into the bounds); extended Rosenbrock with the minimiser
cut off by `x_i <= 0.5` on every odd coordinate (n = 2 ... 1000); an "obstacle" box QP
`0.5 x^T A x - b^T x`, `A = tridiag(-1, 2.1, -1)`, `-0.5 <= x <= 0.5` (n = 1000,
10000); non-negative ridge logistic regression (1000 features, 2000 samples, `w >= 0`).

Every solver targets the same projected-gradient criterion `max|P(x - g) - x| <= 1e-6`
(SciPy `gtol=1e-6, ftol=0, maxcor=10`; JAXopt `tol=1e-6`, whose error is that norm;
jaxmin `gtol=1e-6`), history 10. "solved" is recomputed here at the returned point:
that criterion met and `x` inside the bounds. SciPy calls a jitted `value_and_grad` and
converts to float64 NumPy at each evaluation (its real cost; `OPENBLAS_NUM_THREADS=1`).
Steady time: median of round-robin interleaved repeats after a warm-up call; at least 5,
and for problems that solve in well under a millisecond as many as fit in 0.5 s (at most
201: `timing.rounds_for`), or exactly ``--repeats``.

``python -m benchmarks --only bounds`` runs it.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .problems import GTOL, HISTORY, MAXITER, extended_rosenbrock, hs_module, ridge_logistic_loss
from .protocol import FunctionSection, Options
from .report import fmt_time
from .runners import numpy_value_and_grad
from .timing import interleaved_medians, median, rounds_for, timed_call

SOLVERS = ("jaxmin", "scipy", "jaxopt")
LABEL = {"jaxmin": "jaxmin LBFGS (bounds)", "scipy": "SciPy L-BFGS-B", "jaxopt": "JAXopt LBFGSB"}


@dataclasses.dataclass
class BProblem:
    name: str
    fn: object  # fn(x, *args)
    x0: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    args: tuple = ()

    @property
    def n(self) -> int:
        return self.x0.shape[0]


def _hs(p) -> BProblem:
    lo, up = (np.asarray(b, dtype=np.float64) for b in p.bounds)
    return BProblem(p.name, p.fn, np.clip(np.asarray(p.x0, dtype=np.float64), lo, up), lo, up)


def _rosenbrock(n: int) -> BProblem:
    x0 = np.tile(np.array([-1.2, 1.0]), n // 2)
    upper = np.where(np.arange(n) % 2 == 1, 0.5, np.inf)
    return BProblem(f"rosenbrock-box-{n}", extended_rosenbrock, np.minimum(x0, upper), np.full(n, -np.inf), upper)


def obstacle(x, b):
    """0.5 x^T A x - b^T x with A = tridiag(-1, 2.1, -1), matrix-free."""
    xp = jnp.pad(x, 1)
    ax = 2.1 * x - xp[:-2] - xp[2:]
    return 0.5 * jnp.dot(x, ax) - jnp.dot(b, x)


def _obstacle(n: int) -> BProblem:
    b = np.random.default_rng(n).standard_normal(n)
    return BProblem(f"obstacle-qp-{n}", obstacle, np.zeros(n), np.full(n, -0.5), np.full(n, 0.5),
                    (jnp.asarray(b),))


def _logistic(n: int = 1000, samples: int = 2000) -> BProblem:
    rng = np.random.default_rng(5)
    X = rng.standard_normal((samples, n)) / np.sqrt(n)
    w_true = rng.standard_normal(n) * 3
    y = (rng.uniform(size=samples) < 1 / (1 + np.exp(-X @ w_true))).astype(np.float64)
    return BProblem(f"nonneg-logistic-{n}", ridge_logistic_loss, np.zeros(n), np.zeros(n), np.full(n, np.inf),
                    (jnp.asarray(X), jnp.asarray(y), 1e-3))


# name -> builder, in report order (built lazily: `--only` does not pay for the others' data)
BUILDERS: dict[str, Callable[[], BProblem]] = {
    **{p.name: (lambda p=p: _hs(p)) for p in hs_module("hs_bounds").BOUND_ONLY},
    **{f"rosenbrock-box-{n}": (lambda n=n: _rosenbrock(n)) for n in (2, 10, 100, 1000)},
    "obstacle-qp-1000": lambda: _obstacle(1000),
    "obstacle-qp-10000": lambda: _obstacle(10_000),
    "nonneg-logistic-1000": _logistic,
}
QUICK = ("hs001", "hs038", "hs110", "rosenbrock-box-100", "obstacle-qp-1000")


# --------------------------------------------------------------------------- #
# Solvers: each returns a call `() -> (x, evals)`
# --------------------------------------------------------------------------- #


def _jaxmin(p: BProblem):
    import jaxmin as jm

    solver = jm.LBFGS(gtol=GTOL, history_size=HISTORY)

    @jax.jit
    def solve(x0, lo, up, args):
        sol = jm.minimize(p.fn, x0, solver, args=args, bounds=(lo, up), max_steps=MAXITER)
        return sol.x, sol.num_fun_evals

    x0, lo, up = jnp.asarray(p.x0), jnp.asarray(p.lower), jnp.asarray(p.upper)
    return lambda: solve(x0, lo, up, p.args)


def _jaxmin_direct(p: BProblem):
    """`jm.minimize` called directly, as a script calls it (outside any `jit`: problems of
    at most `SMALL_PROBLEM` unknowns compile with jaxmin's small-problem options), on a
    fresh closure, so the first call traces and compiles anew."""
    import jaxmin as jm

    solver = jm.LBFGS(gtol=GTOL, history_size=HISTORY)
    fn = lambda x, *args: p.fn(x, *args)  # noqa: E731
    x0, lo, up = jnp.asarray(p.x0), jnp.asarray(p.lower), jnp.asarray(p.upper)
    return lambda: jm.minimize(fn, x0, solver, args=p.args, bounds=(lo, up), max_steps=MAXITER).x


def _scipy(p: BProblem):
    from scipy.optimize import minimize

    fg = numpy_value_and_grad(p.fn)
    options = {"maxcor": HISTORY, "gtol": GTOL, "ftol": 0.0, "maxiter": MAXITER, "maxfun": 10 * MAXITER}
    bounds = list(zip(p.lower, p.upper))

    def call():
        r = minimize(fg, p.x0, args=p.args, jac=True, method="L-BFGS-B", bounds=bounds, options=options)
        return r.x, r.nfev

    return call


def _jaxopt(p: BProblem):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import jaxopt

    solver = jaxopt.LBFGSB(fun=p.fn, maxiter=MAXITER, tol=GTOL, history_size=HISTORY)

    @jax.jit
    def solve(x0, lo, up, args):
        x, state = solver.run(x0, (lo, up), *args)
        return x, state.num_fun_eval

    x0, lo, up = jnp.asarray(p.x0), jnp.asarray(p.lower), jnp.asarray(p.upper)
    return lambda: solve(x0, lo, up, p.args)


MAKERS = {"jaxmin": _jaxmin, "scipy": _scipy, "jaxopt": _jaxopt}


@dataclasses.dataclass
class Cell:
    solved: bool = False
    evals: int | None = None
    time: float | None = None  # steady seconds
    first: float | None = None  # first call (compile + solve)
    first_direct: float | None = None  # jaxmin: the first call of `jm.minimize` itself
    f: float | None = None
    pg: float | None = None
    outside: float = 0.0  # largest bound violation of the returned x
    note: str = ""


@dataclasses.dataclass
class BResult:
    rows: list[tuple[BProblem, dict[str, Cell]]]
    repeats: int
    elapsed: float


def _check(p: BProblem, x) -> tuple[float, float, float]:
    x = np.asarray(x, dtype=np.float64)
    f, g = jax.jit(jax.value_and_grad(p.fn))(jnp.asarray(x), *p.args)
    g = np.asarray(g)
    pg = float(np.max(np.abs(np.clip(x - g, p.lower, p.upper) - x)))
    outside = float(max(np.max(p.lower - x, initial=0.0), np.max(x - p.upper, initial=0.0)))
    return float(f), pg, outside


def _first_call(p: BProblem, call: Callable, cell: Cell) -> None:
    cell.first, (x, evals) = timed_call(call)
    cell.evals = int(evals)
    cell.f, cell.pg, cell.outside = _check(p, x)
    cell.solved = cell.pg <= GTOL and cell.outside == 0.0
    if cell.outside > 0:
        cell.note = f"left the bounds by {cell.outside:.1e}"
    elif not cell.solved:
        cell.note = f"|pg|inf {cell.pg:.1e}"


def run(options: Options) -> BResult:
    options.log("[bounds] L-BFGS-B: jaxmin LBFGS(bounds=...) vs SciPy L-BFGS-B and JAXopt LBFGSB")
    repeats, budget_s = options.repeats_or(5, 3), options.budget_or(30.0)
    adapt = options.repeats is None and not options.quick  # (`--repeats` is taken as it is)
    t_start = time.perf_counter()
    rows = []
    names = [n for n in BUILDERS if options.selects(n) and (options.problems or not options.quick or n in QUICK)]
    for name in names:
        p = BUILDERS[name]()
        options.log(f"[bounds] {p.name} (n={p.n})")
        calls, cells = {}, {}
        for s in options.pick(SOLVERS):
            cell = cells[s] = Cell()
            try:
                call = MAKERS[s](p)
                _first_call(p, call, cell)
                calls[s] = call
                if s == "jaxmin":  # (after the jitted call: one-off start-up costs fall there)
                    cell.first_direct = timed_call(_jaxmin_direct(p))[0]
            except Exception as e:  # noqa: BLE001
                cell.note = f"error: {type(e).__name__}: {str(e)[:100]}"
        rounds = rounds_for(calls, repeats) if adapt else repeats
        times, errors = interleaved_medians(calls, rounds, budget_s)
        for s, ts in times.items():
            cells[s].time = median(ts) if ts else None
        for s, e in errors.items():
            cells[s].note = f"error: {type(e).__name__}"
        rows.append((p, cells))
    return BResult(rows, repeats, time.perf_counter() - t_start)


def _fmt_ms(t):
    return "–" if t is None or not np.isfinite(t) else (f"{1e3 * t:.3g}" if t < 10 else f"{t:.1f} s")


def summary(res: BResult) -> dict:
    """Counts and medians over the problems SciPy solved."""
    out = {}
    ref = [(p, c) for p, c in res.rows if c.get("scipy") and c["scipy"].solved]
    for s in ("jaxmin", "jaxopt"):
        pairs = [(c[s], c["scipy"]) for _, c in ref if s in c]
        if not pairs:
            continue
        solved = sum(a.solved for a, _ in pairs)
        ev = [a.evals / b.evals for a, b in pairs if a.solved and a.evals and b.evals]
        tm = [a.time / b.time for a, b in pairs if a.solved and a.time and b.time]
        out[s] = {"solved": solved, "of": len(pairs), "evals": median(ev) if ev else None,
                  "time": median(tm) if tm else None, "time_max": max(tm) if tm else None}
    return out


def markdown(res: BResult) -> str:
    if not res.rows:
        return ""
    head = (
        "\n## Bounds: L-BFGS-B\n\n"
        "`jm.minimize(fn, x0, jm.LBFGS(gtol=1e-6), bounds=(lower, upper))` against SciPy's "
        "L-BFGS-B and JAXopt's `LBFGSB`, all on the projected-gradient target "
        f"`max|P(x - g) - x| <= {GTOL:g}`, history {HISTORY}, float64 (see benchmarks/bounds.py). "
        f"Steady time: median of {res.repeats} interleaved repeats (more, up to 201, where a round "
        "takes under 0.1 s: as many as fit in 0.5 s), in ms; ratio: to SciPy's time. "
        "✓: the target met at the returned x, inside the bounds. First call: trace + compile + "
        "solve (SciPy: its jitted value_and_grad compiled on the first evaluation); jaxmin's "
        "twice, as its steady time is measured (`jm.minimize` inside the caller's `jax.jit`) and "
        "directly (`jm.minimize(...)` from Python, as a script calls it: at most 256 unknowns "
        "compile with jaxmin's small-problem options), each on a fresh closure.\n\n"
    )
    solvers = [s for s in SOLVERS if any(s in c for _, c in res.rows)]
    cols = " | ".join(f"{LABEL[s]} ✓ / evals / ms" + (" / ratio" if s != "scipy" else "") for s in solvers)
    first = "first call " + " / ".join(LABEL[s] + (" in jit / direct" if s == "jaxmin" else "") for s in solvers)
    lines = [f"| problem | n | {cols} | {first} | notes |", "|---|---:|" + "---|" * len(solvers) + "---:|---|"]
    for p, cells in res.rows:
        ref = cells.get("scipy")
        parts, notes = [], []
        for s in solvers:
            c = cells[s]
            cell = f"{'✓' if c.solved else '✗'} / {c.evals if c.evals is not None else '–'} / {_fmt_ms(c.time)}"
            if s != "scipy":
                ratio = c.time / ref.time if ref and ref.time and c.time else None
                cell += f" / {ratio:.3f}" if ratio is not None else " / –"
            parts.append(cell)
            if c.note:
                notes.append(f"{LABEL[s]}: {c.note}")
            same_f = c.f is None or ref is None or ref.f is None or abs(c.f - ref.f) <= 1e-6 * (1 + abs(ref.f))
            if s != "scipy" and c.solved and ref is not None and ref.solved and not same_f:
                notes.append(f"{LABEL[s]}: f {c.f:.6g} vs SciPy {ref.f:.6g}")
        firsts = " / ".join(fmt_time(cells[s].first) + (f" / {fmt_time(cells[s].first_direct)}" if s == "jaxmin" else "")
                            for s in solvers)
        lines.append(f"| {p.name} | {p.n} | " + " | ".join(parts) + f" | {firsts} | {'; '.join(notes)} |")
    summ = summary(res)
    tail = ["", "Over the problems SciPy solves:"]
    for s, d in summ.items():
        ev = f"{d['evals']:.2f}" if d["evals"] is not None else "–"
        tm = f"{d['time']:.3f} (max {d['time_max']:.3f})" if d["time"] is not None else "–"
        tail.append(f"- {LABEL[s]}: solved {d['solved']}/{d['of']}; median evals ratio {ev}; "
                    f"median time ratio {tm}.")
    hs = [c["jaxmin"] for p, c in res.rows if p.name.startswith("hs") and "jaxmin" in c]
    for what, key in (("in jit", "first"), ("direct", "first_direct")):
        firsts = [getattr(c, key) for c in hs if getattr(c, key) is not None]
        if firsts:
            tail.append(f"- {LABEL['jaxmin']}, first call on the HS problems, {what}: median "
                        f"{fmt_time(median(firsts))}, max {fmt_time(max(firsts))}.")
    return head + "\n".join(lines) + "\n" + "\n".join(tail) + f"\n\nSection time {res.elapsed:.0f} s.\n"


SECTION = FunctionSection("bounds", SOLVERS, tuple(BUILDERS), run, markdown)
