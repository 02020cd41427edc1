"""The scaling section: throughput of many small solves under ``jax.vmap``.

``python -m benchmarks --only scaling`` (also part of a full run). Two batched
problems, each at batch sizes 1 … 10 000, every JAX solver as
``jax.jit(jax.vmap(solve))`` over the starts *and* the per-member data; SciPy
L-BFGS-B solves the members one after another in a Python loop (capped, then
extrapolated). Then the slow-member experiment: one member needing ~15× the steps of
the others, under ``vmap`` and under ``jm.minimize_batch`` (compaction).
See benchmarks/README.md ("Scaling section").
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import problems as P
from . import runners as R
from .problems import GTOL, HISTORY, MAXITER, ridge_logistic_loss
from .protocol import FunctionSection, Options
from .timing import timed_call

SIZES = (1, 10, 100, 1000, 10_000)
QUICK_SIZES = (1, 100, 1000)
SCIPY_CAP = 100  # SciPy solves at most this many members per call; the rate extrapolates
BUDGET_S = 15.0  # a solver whose next call would take longer (linear projection) skips it
MAX_REPEATS, MIN_REPEATS, TARGET_S = 7, 3, 1.0  # repeats per (solver, size)
LOGISTIC_FEATURES, LOGISTIC_SAMPLES, LOGISTIC_L2 = 8, 64, 1e-2
SLOW_B = 1e6  # Rosenbrock's valley factor of the slow member (others: 100)


# ------------------------------------------------------------------ problems
def rosenbrock(x, b):
    """Rosenbrock n=2 with valley factor b (b = 100 is MGH 21 at n = 2)."""
    return b * (x[1] - x[0] ** 2) ** 2 + (1.0 - x[0]) ** 2


def logistic(w, X, y):
    """Mean logistic loss + ½·λ‖w‖² of one small data set."""
    return ridge_logistic_loss(w, X, y, LOGISTIC_L2)


@dataclasses.dataclass
class Batch:
    name: str
    fn: Callable
    x0: jax.Array  # (B, n)
    args: tuple  # each (B, ...)


def rosenbrock_batch(size: int) -> Batch:
    x0 = P.batch_starts(size, P.BATCH_SEED)
    return Batch("rosenbrock-2", rosenbrock, jnp.asarray(x0), (jnp.full(size, 100.0),))


def logistic_batch(size: int, seed: int = 7) -> Batch:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((size, LOGISTIC_SAMPLES, LOGISTIC_FEATURES))
    w_true = rng.standard_normal((size, LOGISTIC_FEATURES))
    p = 1.0 / (1.0 + np.exp(-np.einsum("bsf,bf->bs", X, w_true)))
    y = (rng.uniform(size=p.shape) < p).astype(np.float64)
    x0 = jnp.zeros((size, LOGISTIC_FEATURES))
    return Batch(f"logistic-{LOGISTIC_FEATURES}x{LOGISTIC_SAMPLES}", logistic, x0, (jnp.asarray(X), jnp.asarray(y)))


def slow_member_batch(size: int) -> Batch:
    """Rosenbrock batch whose member 0 has the valley factor SLOW_B."""
    b = rosenbrock_batch(size)
    return dataclasses.replace(b, name="rosenbrock-2, one slow member", args=(b.args[0].at[0].set(SLOW_B),))


# ------------------------------------------------------------------ solvers
def _jaxmin(fn, dense: bool = False):
    import jaxmin as jm

    solver = jm.BFGS(gtol=GTOL) if dense else jm.LBFGS(history_size=HISTORY, gtol=GTOL)

    def solve(x0, args):
        sol = jm.minimize(fn, x0, solver, args=args, max_steps=MAXITER)
        return sol.x, sol.num_steps

    return solve


def _optx(fn, bfgs: bool):
    import optimistix as optx

    tol = R.OPTX_TOL_BATCH
    solver = optx.BFGS(rtol=tol, atol=tol) if bfgs else optx.LBFGS(rtol=tol, atol=tol, history_length=HISTORY)
    solve = R._optx_solve(fn, solver)
    return lambda x0, args: solve(x0, args)[:2]


def _peer(make):
    def build(fn):
        solve = make(fn)
        return lambda x0, args: solve(x0, args)[:2]

    return build


# name -> fn -> solve(x0, args) -> (x, iterations), for ONE member
JAX_SOLVERS: dict[str, Callable] = {
    "jaxmin": _jaxmin,
    "jaxmin-bfgs": lambda fn: _jaxmin(fn, dense=True),
    "optimistix-bfgs": lambda fn: _optx(fn, bfgs=True),
    "optimistix": lambda fn: _optx(fn, bfgs=False),
    "optax": _peer(R._optax_solve),
    "jaxopt": _peer(R._jaxopt_solve),
}


def batched(solve: Callable) -> Callable:
    return jax.jit(jax.vmap(solve))


MAP_BATCH = 1000


def mapped(solve: Callable) -> Callable:
    """``jax.lax.map(..., batch_size=MAP_BATCH)``: vmapped blocks of MAP_BATCH members,
    one block after another, in one compiled program."""
    return jax.jit(lambda x0, args: jax.lax.map(lambda xa: solve(*xa), (x0, args), batch_size=MAP_BATCH))


class ScipyLoop:
    """SciPy L-BFGS-B over the first min(B, SCIPY_CAP) members, one after another."""

    def __init__(self, fn):
        from scipy.optimize import minimize

        self._minimize = minimize
        self._fg = R.numpy_value_and_grad(fn)

    def __call__(self, x0, args):
        x0, args = np.asarray(x0), [np.asarray(a) for a in args]
        out = []
        for i in range(min(len(x0), SCIPY_CAP)):
            member = tuple(jnp.asarray(a[i]) for a in args)
            res = self._minimize(self._fg, x0[i], args=member, jac=True, method="L-BFGS-B",
                                 options=R.SCIPY_OPTIONS)
            out.append((res.x, res.nit))
        return np.stack([o[0] for o in out]), np.array([o[1] for o in out])


# ------------------------------------------------------------------ measurement
@dataclasses.dataclass
class Cell:
    seconds: float | None = None  # median per call (SciPy: per capped call)
    solved: int = 0  # members per call
    first: float | None = None
    iters_mean: float = 0.0
    iters_max: int = 0
    gnorm: float = 0.0  # max over members of ||g||_inf at the returned x
    converged: int = 0
    note: str = ""

    @property
    def rate(self) -> float | None:
        return None if self.seconds is None else self.solved / self.seconds


def _gnorm(fn):
    vg = jax.jit(jax.vmap(lambda x, a: jnp.max(jnp.abs(jax.grad(fn)(x, *a)))))
    return lambda x, args: np.asarray(vg(jnp.asarray(x), tuple(a[: len(x)] for a in args)))


def _measure(call, x0, args, check, repeats: int | None = None, budget_s: float = BUDGET_S) -> Cell:
    """First call, then repeats (``None``: MIN_REPEATS…MAX_REPEATS, until TARGET_S)
    within ``budget_s``."""
    cell = Cell()
    cell.first, (x, iters) = timed_call(call, x0, args)
    g = check(x, args)
    iters = np.asarray(iters)
    cell.solved, cell.iters_mean, cell.iters_max = len(x), float(iters.mean()), int(iters.max())
    cell.gnorm, cell.converged = float(g.max()), int((g <= GTOL).sum())
    times = []
    low, high = (MIN_REPEATS, MAX_REPEATS) if repeats is None else (repeats, repeats)
    while len(times) < high and (len(times) < low or sum(times) < TARGET_S):
        times.append(timed_call(call, x0, args)[0])
        if sum(times) > budget_s:
            break
    cell.seconds = float(np.median(times))
    return cell


def run_throughput(make_batch, sizes, options: Options) -> dict[str, dict[int, Cell]]:
    """{solver: {size: Cell}} for one problem."""
    solvers, log = options.pick(SOLVERS), options.log
    budget_s = options.budget_or(BUDGET_S)
    fn = make_batch(1).fn
    check = _gnorm(fn)
    calls = {}
    for name in solvers:
        try:
            if name == "scipy":
                calls[name] = ScipyLoop(fn)
            else:
                calls[name] = batched(JAX_SOLVERS[name](fn))
            if name in ("jaxmin", "optimistix-bfgs"):
                calls[f"{name}-map"] = mapped(JAX_SOLVERS[name](fn))
        except Exception as e:  # noqa: BLE001 - a missing peer is reported, not fatal
            log(f"  {name}: unavailable ({type(e).__name__}: {e})")
    out: dict[str, dict[int, Cell]] = {name: {} for name in calls}
    over: set[str] = set()
    for size in sizes:
        b = make_batch(size)
        for name, call in calls.items():
            if name in over:
                out[name][size] = Cell(note="skipped (over budget)")
                continue
            try:
                cell = out[name][size] = _measure(call, b.x0, b.args, check, options.repeats, budget_s)
            except Exception as e:  # noqa: BLE001
                out[name][size] = Cell(note=f"error: {type(e).__name__}")
                log(f"  {b.name} B={size} {name}: {type(e).__name__}: {e}")
                continue
            following = [s for s in sizes if s > size]
            if following and cell.seconds * following[0] / size > budget_s:
                over.add(name)
            log(f"  {b.name:14s} B={size:<6d} {name:16s} {cell.seconds * 1e3:10.2f} ms  "
                f"{cell.rate:12.0f} problems/s  iters {cell.iters_mean:.1f}/{cell.iters_max}  "
                f"max|g| {cell.gnorm:.1e}  conv {cell.converged}/{cell.solved}")
    return out


def run_slow_member(size: int, options: Options) -> list[tuple[str, Cell]]:
    """vmap vs compaction when member 0 needs ~15x the steps of the others (the
    jaxmin cases when "jaxmin" is selected, Optimistix BFGS's when it is)."""
    from jaxmin import LBFGS
    from jaxmin import minimize_batch

    fast, slow = rosenbrock_batch(size), slow_member_batch(size)
    check = _gnorm(rosenbrock)
    solver = LBFGS(history_size=HISTORY, gtol=GTOL)
    vmapped = batched(_jaxmin(rosenbrock))
    optx_bfgs = batched(JAX_SOLVERS["optimistix-bfgs"](rosenbrock)) if options.pick(("optimistix-bfgs",)) else None

    def compact(chunk):
        def call(x0, args):
            sol = minimize_batch(rosenbrock, x0, solver, args, max_steps=MAXITER, chunk=chunk)
            return sol.x, sol.num_steps

        return call

    rows = []
    cases = [
        ("jaxmin vmap, all fast", vmapped, fast),
        ("jaxmin vmap, one slow", vmapped, slow),
        ("jaxmin vmap, the slow member alone", vmapped, dataclasses.replace(
            slow, x0=slow.x0[:1], args=tuple(a[:1] for a in slow.args))),
        ("jaxmin minimize_batch(chunk=16), all fast", compact(16), fast),
        ("jaxmin minimize_batch(chunk=16), one slow", compact(16), slow),
        ("jaxmin minimize_batch(chunk=64), one slow", compact(64), slow),
        ("jaxmin lax.map(batch_size=1000), one slow", mapped(_jaxmin(rosenbrock)), slow),
        ("Optimistix BFGS vmap, all fast", optx_bfgs, fast),
        ("Optimistix BFGS vmap, one slow", optx_bfgs, slow),
    ]
    for label, call, b in cases:
        if call is None:  # Optimistix BFGS not selected
            continue
        cell = _measure(call, b.x0, b.args, check, options.repeats, options.budget_or(BUDGET_S))
        rows.append((label, cell))
        options.log(f"  slow-member B={size}: {label:45s} {cell.seconds * 1e3:9.2f} ms  iters "
            f"{cell.iters_mean:.1f}/{cell.iters_max}  conv {cell.converged}/{cell.solved}")
    return rows


@dataclasses.dataclass
class ScalingResult:
    sizes: tuple
    tables: dict  # problem name -> {solver: {size: Cell}}
    slow: list
    slow_size: int
    elapsed: float


SOLVERS = (*JAX_SOLVERS, "scipy")
# --only names: the two throughput tables and the slow-member experiment
PROBLEMS = {"scaling-rosenbrock-2": rosenbrock_batch, "scaling-logistic-8x64": logistic_batch}
SLOW = "scaling-slow-member"


def run(options: Options) -> ScalingResult:
    t0 = time.perf_counter()
    sizes = QUICK_SIZES if options.quick else SIZES
    tables = {}
    for key, make in PROBLEMS.items():
        if options.selects(key):
            name = make(1).name
            options.log(f"[scaling] {name}: vmap over 1 … {sizes[-1]} problems")
            tables[name] = run_throughput(make, sizes, options)
    slow_size, slow = sizes[-1], []
    if options.selects(SLOW) and options.pick(("jaxmin",)):
        options.log(f"[scaling] slow member: B={slow_size}")
        slow = run_slow_member(slow_size, options)
    return ScalingResult(sizes, tables, slow, slow_size, time.perf_counter() - t0)


# ------------------------------------------------------------------ report
LABELS = {
    "jaxmin": "jaxmin LBFGS", "jaxmin-bfgs": "jaxmin BFGS", "jaxmin-map": f"jaxmin LBFGS, lax.map(batch_size={MAP_BATCH})",
    "optimistix-bfgs": "Optimistix BFGS", "optimistix-bfgs-map": f"Optimistix BFGS, lax.map(batch_size={MAP_BATCH})",
    "optimistix": "Optimistix LBFGS",
    "optax": "Optax lbfgs", "jaxopt": "JAXopt LBFGS", "scipy": f"SciPy L-BFGS-B loop (≤{SCIPY_CAP}, extrapolated)",
}


def _rate(cell: Cell | None) -> str:
    if cell is None:
        return ""
    if cell.rate is None:
        return cell.note
    mark = "" if cell.converged == cell.solved else f" ✗{cell.solved - cell.converged}"
    return f"{cell.rate:,.0f}{mark}"


def markdown(res: ScalingResult) -> str:
    if not (res.tables or res.slow):
        return ""
    parts = [
        "\n## Scaling: batched solves (jax.vmap)\n\n",
        (
        "Throughput in **problems per second** (batch size / median wall time of one "
        "`jax.jit(jax.vmap(solve))` call over starts *and* per-member data, compiled beforehand; "
        f"the `lax.map` row runs vmapped blocks of {MAP_BATCH} members one after another in one "
        "program). "
        f"Target ‖∇f‖∞ ≤ {GTOL:g} per member; ✗k = k members missed it (harness-recomputed). "
        "Rosenbrock n=2: starts (-1.2, 1) + 0.1·N(0, I) (seed 2024). Logistic: per member its own "
        f"{LOGISTIC_SAMPLES}×{LOGISTIC_FEATURES} data set, ½·{LOGISTIC_L2:g}‖w‖², w0 = 0. "
        f"SciPy solves at most {SCIPY_CAP} members per call in a Python loop; its rate is that "
        f"count / time (extrapolated linearly to larger batches). A solver whose next call would "
        f"take over {BUDGET_S:g} s (projected linearly) skips it. Peers configured as in the batch section "
        f"(Optimistix rtol = atol = {R.OPTX_TOL_BATCH:g}).\n"
        ),
    ]
    for name, table in res.tables.items():
        parts.append(f"\n### {name}\n\n| solver | " + " | ".join(f"B={s:,}" for s in res.sizes)
                     + " | iters mean/max (largest B) |\n|---|" + "---:|" * (len(res.sizes) + 1) + "\n")
        for solver, cells in table.items():
            last = next((cells[s] for s in reversed(res.sizes) if s in cells and cells[s].rate), None)
            its = f"{last.iters_mean:.1f}/{last.iters_max}" if last else ""
            parts.append(f"| {LABELS.get(solver, solver)} | "
                         + " | ".join(_rate(cells.get(s)) for s in res.sizes) + f" | {its} |\n")
        if "jaxmin" in table:
            ratios = []
            for s in res.sizes:
                # peers as runners.py configures them (plain vmap; the lax.map variant of
                # Optimistix BFGS is shown for reference, not counted)
                peers = [c[s].rate for n, c in table.items() if not n.startswith("jaxmin")
                         and not n.endswith("-map") and s in c and c[s].rate and c[s].converged == c[s].solved]
                best = max((table[n][s].rate for n in ("jaxmin", "jaxmin-map", "jaxmin-bfgs")
                            if n in table and s in table[n] and table[n][s].rate), default=None)
                ratios.append(f"{best / max(peers):.2f}×" if best and peers else "–")
            parts.append("| **best jaxmin / fastest peer** | " + " | ".join(ratios) + " | |\n")
    if res.slow:
        parts.append(
            f"\n### One slow member among {res.slow_size:,}\n\n"
            f"Rosenbrock n=2 batch as above; member 0 has valley factor {SLOW_B:g} instead of 100 "
            "(≈15× the steps). Under `vmap` every while loop runs until its slowest member is "
            "done, at the full batch's cost per step. `jm.minimize_batch` runs `chunk` "
            "steps at a time and then keeps only the unfinished members (padded to a power of two), "
            "each resumed from its solver state, so every member runs its own solve's steps (XLA "
            "compiles each batch size apart and may round last bits differently: on the "
            "ill-conditioned slow member that shifts its step count by a few).\n\n| case | time | iters mean/max | converged |\n|---|---:|---:|---:|\n"
        )
        for label, c in res.slow:
            parts.append(f"| {label} | {c.seconds * 1e3:.2f} ms | {c.iters_mean:.1f}/{c.iters_max} | "
                         f"{c.converged}/{c.solved} |\n")
    parts.append(f"\nScaling section wall time {res.elapsed:.0f} s.\n")
    return "".join(parts)


SECTION = FunctionSection("scaling", SOLVERS, (*PROBLEMS, SLOW), run, markdown)
