"""The ``hypergrad`` section: derivatives of a solution (implicit differentiation).

Problem: L2-regularised logistic regression with one regularisation strength per
feature.  Inner problem ``w*(t) = argmin_w mean_train logistic(w) + 0.5 sum(exp(t) w^2)``
with ``t = log lambda`` (200 values); outer loss ``L(t) = mean_val logistic(w*(t))``.
The hypergradient ``dL/dt`` is ``-(d grad_w / dt)^T H^{-1} grad_w L_val`` at ``w*``.

For each library (jaxmin, Optimistix, JAXopt), two jitted functions are timed,
round-robin interleaved with the others: the forward solve alone (``t -> w*``), and
``jax.grad(L)`` (which includes the forward solve).  Accuracy is measured against a
float64 reference that uses no library solver: a dense Newton solve to machine
precision and the implicit formula with the dense ``jax.hessian`` and the dense
``jax.jacobian`` of the gradient with respect to ``t``; the reference itself is
spot-checked against central finite differences of ``L``.

``python -m benchmarks --only hypergrad`` runs it; ``python -m benchmarks.calibrate
hypergrad`` re-derives Optimistix's tolerance. See benchmarks/README.md
("Hypergradient section").
"""

from __future__ import annotations

import dataclasses
import time
import traceback
import warnings
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .problems import GTOL, MAXITER, logistic_loss
from .protocol import FunctionSection, Options
from .suite import error_text
from .timing import eval_time, hvp_time, interleaved_medians, median, timed_call

N_FEATURES = 200
N_TRAIN = 4000
N_VAL = 2000
SEED = 7
LAM_CENTRE = 1e-2  # lambda_i = exp(t_i), t_i = log(1e-2) + 0.5 N(0, 1)

# Inner target ||grad_w||_inf <= GTOL (the harness-wide target), MAXITER iterations.
# Optimistix stops on a Cauchy criterion (rtol = atol on y and f), not on the gradient:
# the loosest of 1e-6, 1e-7, ..., 1e-10 that reaches ||grad_w||_inf <= GTOL at the
# benchmark's t (`python -m benchmarks.calibrate hypergrad`; 1e-6 gives 7e-8).
OPTX_TOL = 1e-6
# JAXopt stops on ||grad||_2 <= tol, which implies the inf-norm target.
JAXOPT_TOL = GTOL
FD_STEP = 1e-4  # central differences on t_i
FD_COORDS = 3  # spot-checked coordinates: largest |dL/dt_i|, median |.|, smallest |.|
NEWTON_STEPS = 30  # reference solve (dense Newton from 0; converges in ~8)

SOLVERS = ("jaxmin", "optimistix", "jaxopt")
LABEL = {"jaxmin": "jaxmin LBFGS", "optimistix": "Optimistix LBFGS", "jaxopt": "JAXopt LBFGS"}
CONFIG = {
    "jaxmin": f"`jm.minimize(inner, w0, jm.LBFGS(gtol={GTOL:g}), args=…)`; implicit rule: "
    "default `jm.linear.CG()` (rtol 1e-6, matrix-free HVPs)",
    "optimistix": f"`optx.minimise(…, optx.LBFGS(rtol={OPTX_TOL:g}, atol={OPTX_TOL:g}), adjoint="
    "optx.ImplicitAdjoint())` (default adjoint: `lx.AutoLinearSolver(well_posed=None)` → "
    "dense Jacobian + LU)",
    "jaxopt": f"`jaxopt.LBFGS(fun=inner, tol={JAXOPT_TOL:g}, implicit_diff=True).run(w0, …)` "
    "(default `implicit_diff_solve`: `solve_normal_cg`, tol 1e-5)",
}


# --------------------------------------------------------------------------- #
# Problem
# --------------------------------------------------------------------------- #


def inner(w, t, X, y):
    """Training loss + 0.5 sum(exp(t) w^2): the inner objective, in w."""
    return logistic_loss(w, X, y) + 0.5 * jnp.sum(jnp.exp(t) * w * w)


@dataclasses.dataclass
class Data:
    t: jnp.ndarray  # log lambda, (n,)
    train: tuple  # (X, y)
    val: tuple  # (X, y)
    w0: jnp.ndarray

    @property
    def description(self) -> str:
        n = self.t.shape[0]
        return (
            f"{n} features, {self.train[0].shape[0]} train / {self.val[0].shape[0]} validation samples "
            f"(X ~ N(0, 1); w_true with ~30 % nonzeros; labels ~ Bernoulli(sigmoid(X w_true)); seed {SEED}); "
            f"t = log λ ∈ R^{n}, t_i = log({LAM_CENTRE:g}) + 0.5·N(0, 1); w0 = 0; float64"
        )


def make_data(n=N_FEATURES, n_train=N_TRAIN, n_val=N_VAL, seed=SEED) -> Data:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_train + n_val, n))
    w_true = rng.standard_normal(n) * (rng.uniform(size=n) < 0.3) * 3.0 / np.sqrt(0.3 * n)
    y = (rng.uniform(size=n_train + n_val) < 1.0 / (1.0 + np.exp(-(X @ w_true)))).astype(np.float64)
    t = np.log(LAM_CENTRE) + 0.5 * rng.standard_normal(n)
    f64 = lambda a: jnp.asarray(a, dtype=jnp.float64)  # noqa: E731
    return Data(
        f64(t), (f64(X[:n_train]), f64(y[:n_train])), (f64(X[n_train:]), f64(y[n_train:])), jnp.zeros(n)
    )


# --------------------------------------------------------------------------- #
# The three libraries: forward(t, train) -> (w*, iters, evals); outer(t, train, val)
# --------------------------------------------------------------------------- #


def _jaxmin_forward(w0):
    import jaxmin as jm

    solver = jm.LBFGS(gtol=GTOL)

    def forward(t, train):
        sol = jm.minimize(inner, w0, solver, args=(t, *train), max_steps=MAXITER)
        return sol.x, sol.num_steps, sol.num_fun_evals

    return forward


def _optx_forward(w0, tol=OPTX_TOL):
    import optimistix as optx

    solver = optx.LBFGS(rtol=tol, atol=tol)

    def forward(t, train):
        sol = optx.minimise(
            lambda w, a: inner(w, *a), solver, w0, args=(t, *train), max_steps=MAXITER, throw=False,
            adjoint=optx.ImplicitAdjoint(),  # the default, spelled out
        )
        return sol.value, sol.state.num_accepted_steps, sol.stats["num_steps"]

    return forward


def _jaxopt_forward(w0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import jaxopt

    solver = jaxopt.LBFGS(fun=inner, tol=JAXOPT_TOL, maxiter=MAXITER, implicit_diff=True)

    def forward(t, train):
        w, state = solver.run(w0, t, *train)
        return w, state.iter_num, state.num_fun_eval

    return forward


FORWARDS: dict[str, Callable] = {"jaxmin": _jaxmin_forward, "optimistix": _optx_forward, "jaxopt": _jaxopt_forward}


def _outer(forward):
    def outer(t, train, val):
        return logistic_loss(forward(t, train)[0], *val)

    return outer


def _jaxmin_preconditioned_outer(w0):
    """jaxmin's outer loss with the implicit rule's CG preconditioned by L-BFGS's
    inverse-Hessian approximation at w* (`CG(preconditioner="solver")`)."""
    import jaxmin as jm

    solver, linear = jm.LBFGS(gtol=GTOL), jm.linear.CG(preconditioner="solver")

    def outer(t, train, val):
        sol = jm.minimize(inner, w0, solver, args=(t, *train), max_steps=MAXITER, implicit_solver=linear)
        return logistic_loss(sol.x, *val)

    return outer


def _jaxmin_cg_steps(d: Data) -> tuple[int, int]:
    """CG steps of jaxmin's reverse-mode implicit solve `H v = grad L_val` at w* (rtol
    1e-6, the default): plain, and preconditioned by the final L-BFGS state."""
    import jaxmin as jm
    from jaxmin._loop import run_solver

    solver, args = jm.LBFGS(gtol=GTOL), (d.t, *d.train)

    @jax.jit
    def steps(args, val):
        w, state = run_solver(solver, inner, d.w0, args, MAXITER)[:2]
        hvp = lambda v: jax.jvp(lambda z: jax.grad(inner)(z, *args), (w,), (v,))[1]  # noqa: E731
        b = jax.grad(logistic_loss)(w, *val)
        pre = solver.implicit_preconditioner(state)
        return tuple(jm.linear.CG(preconditioner=p).solve(hvp, b).num_steps for p in (None, pre))

    return tuple(int(n) for n in steps(args, d.val))


# --------------------------------------------------------------------------- #
# Reference (no library solver): dense Newton + dense implicit formula
# --------------------------------------------------------------------------- #


def _newton(t, train, w0):
    g = jax.grad(inner)
    hess = jax.hessian(inner)

    def body(_, w):
        return w - jnp.linalg.solve(hess(w, t, *train), g(w, t, *train))

    return jax.lax.fori_loop(0, NEWTON_STEPS, body, w0)


def _reference(t, train, val, w0):
    """(w*, dL/dt) in float64: w* by dense Newton; dL/dt = -J^T H^{-1} grad L_val with
    H = jax.hessian(inner) and J = jax.jacobian(grad_w inner, wrt t), both dense."""
    w = _newton(t, train, w0)
    H = jax.hessian(inner)(w, t, *train)
    J = jax.jacobian(jax.grad(inner), argnums=1)(w, t, *train)
    gv = jax.grad(logistic_loss)(w, *val)
    return w, -J.T @ jnp.linalg.solve(H, gv)


def _outer_reference(t, train, val, w0):
    return logistic_loss(_newton(t, train, w0), *val)


# --------------------------------------------------------------------------- #
# Run
# --------------------------------------------------------------------------- #


@dataclasses.dataclass
class HRow:
    solver: str
    first_fwd: float | None = None
    first_grad: float | None = None
    fwd: float | None = None  # steady median
    grad: float | None = None
    n_fwd: int = 0
    n_grad: int = 0
    grad_pre: float | None = None  # jaxmin only: grad with `CG(preconditioner="solver")`
    n_grad_pre: int = 0
    cg_steps: tuple[int, int] | None = None  # jaxmin only: implicit CG steps, plain / preconditioned
    iters: int | None = None
    nfev: int | None = None
    gnorm: float | None = None  # ||grad_w inner||_inf at the returned w (recomputed)
    w_err: float | None = None  # ||w - w*_ref||_inf / ||w*_ref||_inf
    rel_err: float | None = None  # ||g - g_ref||_inf / ||g_ref||_inf
    max_elem_err: float | None = None  # max_i |g_i - g_ref_i| / |g_ref_i|
    fd_err: float | None = None  # max over the spot-checked i of |g_i - fd_i| / |fd_i|
    error: str | None = None

    @property
    def ratio(self) -> float | None:
        return None if self.fwd is None or self.grad is None else self.grad / self.fwd


@dataclasses.dataclass
class HResult:
    rows: list[HRow]
    description: str
    repeats: int
    budget: float
    elapsed: float
    ref_gnorm: float
    ref_time: float  # steady-ish time of one jitted reference (median of 3)
    fd_coords: list[int]
    fd_vs_ref: float  # max_i |g_ref_i - fd_i| / |fd_i|
    ref_norm: float
    t_eval: float  # one value_and_grad of inner (jitted fori_loop, timing.eval_time)
    t_hvp: float  # one Hessian-vector product of inner (timing.hvp_time)


@dataclasses.dataclass
class _Reference:
    w: jax.Array  # w* (dense Newton)
    g: np.ndarray  # dL/dt (dense implicit formula)
    time: float
    gnorm: float
    coords: list[int]  # the FD-checked coordinates
    fd: dict[int, float]  # central differences of L on them
    fd_vs_ref: float


def _reference_and_fd(d: Data, log: Callable) -> _Reference:
    """The dense reference, and its spot check against central finite differences."""
    train, val = d.train, d.val
    ref_fn = jax.jit(_reference)
    w_ref, g_ref = jax.block_until_ready(ref_fn(d.t, train, val, d.w0))
    ref_time = median([timed_call(ref_fn, d.t, train, val, d.w0)[0] for _ in range(3)])
    ref_gnorm = float(jnp.max(jnp.abs(jax.jit(jax.grad(inner))(w_ref, d.t, *train))))
    g_ref = np.asarray(g_ref)
    order = np.argsort(np.abs(g_ref))
    coords = [int(order[-1]), int(order[len(order) // 2]), int(order[0])][:FD_COORDS]
    outer_ref = jax.jit(_outer_reference)
    fd = {}
    for i in coords:
        e = np.zeros_like(g_ref)
        e[i] = FD_STEP
        lp = float(outer_ref(d.t + e, train, val, d.w0))
        lm = float(outer_ref(d.t - e, train, val, d.w0))
        fd[i] = (lp - lm) / (2 * FD_STEP)
    fd_vs_ref = max(abs(g_ref[i] - fd[i]) / abs(fd[i]) for i in coords)
    log(f"  reference: ||grad_w||_inf = {ref_gnorm:.1e}, ||dL/dt||_inf = {np.max(np.abs(g_ref)):.3e}, "
        f"FD check on t_{coords}: max rel. diff {fd_vs_ref:.1e}")
    return _Reference(w_ref, g_ref, ref_time, ref_gnorm, coords, fd, fd_vs_ref)


def run(options: Options) -> HResult:
    options.log("[hypergrad] jax.grad through an L-BFGS solve (per-feature regularised logistic regression)")
    repeats, budget_s, log = options.repeats_or(21, 7), options.budget_or(20.0), options.log
    t_start = time.perf_counter()
    d = make_data()
    train, val = d.train, d.val
    ref = _reference_and_fd(d, log)
    w_ref, g_ref, fd, coords = ref.w, ref.g, ref.fd, ref.coords

    t_eval = eval_time(inner, w_ref, (d.t, *train))
    t_hvp = hvp_time(inner, w_ref, (d.t, *train))
    log(f"  t_eval {t_eval * 1e6:.0f} µs, t_hvp {t_hvp * 1e6:.0f} µs")

    grad_inner = jax.jit(jax.grad(inner))
    rows: list[HRow] = []
    calls: dict[str, Callable] = {}
    for name in options.pick(SOLVERS):
        row = HRow(name)
        rows.append(row)
        try:
            forward = FORWARDS[name](d.w0)
            fwd = jax.jit(forward)
            grad = jax.jit(jax.grad(_outer(forward)))
            row.first_fwd, out = timed_call(fwd, d.t, train)
            row.first_grad, g = timed_call(grad, d.t, train, val)
        except Exception as e:  # noqa: BLE001
            row.error = error_text(e)
            log(f"  hypergrad {name}: {row.error}")
            if options.traceback:
                traceback.print_exc()
            continue
        w, iters, nfev = jax.device_get(out)
        g = np.asarray(g)
        row.iters, row.nfev = int(iters), int(nfev)
        row.gnorm = float(jnp.max(jnp.abs(grad_inner(jnp.asarray(w), d.t, *train))))
        row.w_err = float(np.max(np.abs(w - w_ref)) / np.max(np.abs(w_ref)))
        row.rel_err = float(np.max(np.abs(g - g_ref)) / np.max(np.abs(g_ref)))
        row.max_elem_err = float(np.max(np.abs(g - g_ref) / np.abs(g_ref)))
        row.fd_err = max(abs(g[i] - fd[i]) / abs(fd[i]) for i in coords)
        calls[f"{name}:fwd"] = lambda f=fwd: f(d.t, train)
        calls[f"{name}:grad"] = lambda f=grad: f(d.t, train, val)
        if name == "jaxmin":
            row.cg_steps = _jaxmin_cg_steps(d)
            grad_pre = jax.jit(jax.grad(_jaxmin_preconditioned_outer(d.w0)))
            calls["jaxmin:grad_pre"] = lambda f=grad_pre: f(d.t, train, val)
            jax.block_until_ready(calls["jaxmin:grad_pre"]())
        # one untimed call each (like the harness's steady-start call)
        jax.block_until_ready(calls[f"{name}:fwd"]())
        jax.block_until_ready(calls[f"{name}:grad"]())
        log(f"  {name:11s} first fwd {row.first_fwd:.2f}s grad {row.first_grad:.2f}s; "
            f"iters {row.iters} evals {row.nfev} ||g||_inf {row.gnorm:.1e}; hypergrad rel. err {row.rel_err:.1e}")

    times, errors = interleaved_medians(calls, repeats, budget_s)
    by = {r.solver: r for r in rows}
    for key, ts in times.items():
        name, kind = key.split(":")
        if ts:
            setattr(by[name], kind, median(ts))
            setattr(by[name], f"n_{kind}", len(ts))
    for key, e in errors.items():
        name = key.split(":")[0]
        by[name].error = by[name].error or error_text(e)
    for r in rows:
        if r.ratio is not None:
            log(f"  {r.solver:11s} forward {r.fwd * 1e3:.2f} ms, grad {r.grad * 1e3:.2f} ms, grad/forward {r.ratio:.2f}")
        if r.grad_pre is not None and r.fwd is not None:
            log(f"  {r.solver:11s} grad with the L-BFGS preconditioner {r.grad_pre * 1e3:.2f} ms, "
                f"grad/forward {r.grad_pre / r.fwd:.2f}; implicit CG steps plain / preconditioned "
                f"{r.cg_steps[0]} / {r.cg_steps[1]}")
    return HResult(
        rows, d.description, repeats, budget_s, time.perf_counter() - t_start, ref.gnorm, ref.time,
        coords, ref.fd_vs_ref, float(np.max(np.abs(g_ref))), t_eval, t_hvp,
    )


# --------------------------------------------------------------------------- #
# Report
# --------------------------------------------------------------------------- #


def _ms(s: float | None, n: int, repeats: int) -> str:
    if s is None:
        return "–"
    out = f"{s * 1e3:.2f} ms"
    return out + (f" (n={n})" if n and n < repeats else "")


def table(res: HResult) -> str:
    jm_grad = next((r.grad for r in res.rows if r.solver == "jaxmin" and r.grad is not None), None)
    head = (
        "| library | first call fwd / grad | forward (steady) | grad(outer) (steady) | grad / forward | "
        "grad − forward (÷ t_hvp) | "
        "grad × jaxmin's | iters / evals (forward) | ‖∇_w inner‖∞ at w | ‖w − w*‖∞ rel. | "
        "hypergrad rel. err ‖·‖∞ | max elementwise rel. err | vs FD (max over 3 coords) |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in res.rows:
        if r.rel_err is None:  # the first calls failed
            lines.append(f"| {LABEL[r.solver]} | {r.error} |" + " |" * 12)
            continue
        ratio = "–" if r.ratio is None else f"{r.ratio:.2f}×"
        vs = "–" if jm_grad is None or r.grad is None else f"{r.grad / jm_grad:.2f}×"
        extra = (
            "–" if r.ratio is None
            else f"{(r.grad - r.fwd) * 1e3:.2f} ms ({(r.grad - r.fwd) / res.t_hvp:.0f})"
        )
        ok = "✓" if r.gnorm is not None and r.gnorm <= GTOL else "✗"
        lines.append(
            f"| {LABEL[r.solver]} | {r.first_fwd:.2f} s / {r.first_grad:.2f} s | "
            f"{_ms(r.fwd, r.n_fwd, res.repeats)} | {_ms(r.grad, r.n_grad, res.repeats)} | {ratio} | {extra} | {vs} | "
            f"{r.iters} / {r.nfev} | {r.gnorm:.1e} {ok} | {r.w_err:.1e} | {r.rel_err:.1e} | "
            f"{r.max_elem_err:.1e} | {r.fd_err:.1e} |"
            + (f" {r.error}" if r.error else "")
        )
    return head + "\n".join(lines) + "\n"


def _preconditioned_note(jm: HRow | None) -> str:
    if jm is None or jm.grad_pre is None or jm.fwd is None or jm.grad is None:
        return ""
    return (
        "\njaxmin with `implicit_solver=jm.linear.CG(preconditioner=\"solver\")` (CG preconditioned by "
        "L-BFGS's inverse-Hessian approximation at w*; Morales & Nocedal 2000): grad(outer) "
        f"{_ms(jm.grad_pre, jm.n_grad_pre, jm.n_grad)} ({jm.grad_pre / jm.fwd:.2f}× forward, against "
        f"{jm.ratio:.2f}× with the default plain CG); the implicit solve takes {jm.cg_steps[1]} CG steps "
        f"instead of {jm.cg_steps[0]} (H is well conditioned here, so the default stays plain CG).\n"
    )


def markdown(res: HResult) -> str:
    if not res.rows:
        return ""
    jm = next((r for r in res.rows if r.solver == "jaxmin"), None)
    if jm is not None and jm.ratio is not None:
        target = (
            f"Target (issue): jaxmin's grad(outer) ≤ 2× one forward solve: **{jm.ratio:.2f}×** "
            f"{'✓' if jm.ratio <= 2.0 else '✗'} (steady medians).\n\n"
        )
    else:
        target = "Target (issue): jaxmin's grad(outer) ≤ 2× one forward solve: not measured.\n\n"
    parts = [
        "\n## Hypergradient: implicit differentiation of an L-BFGS solution\n\n",
        "Per-feature L2-regularised logistic regression, "
        f"{res.description}. Inner: w*(t) = argmin_w mean_train logistic(w) + ½ Σ exp(tᵢ) wᵢ²; "
        "outer: L(t) = mean_val logistic(w*(t)). *forward* = jitted `t ↦ w*` alone; *grad(outer)* = "
        "jitted `jax.grad(L)` (includes the forward solve). Both from w0 = 0, data passed as jit "
        f"arguments; steady = median of {res.repeats} calls, all timed functions interleaved round-robin "
        f"(GC off, at most {res.budget:g} s per function). Inner target ‖∇_w‖∞ ≤ {GTOL:g} for all "
        f"(Optimistix rtol = atol = {OPTX_TOL:g}, calibrated; JAXopt tol = {JAXOPT_TOL:g} on ‖g‖₂); "
        "each library's default implicit-differentiation settings:\n\n",
        "".join(f"- **{LABEL[r.solver]}**: {CONFIG[r.solver]}\n" for r in res.rows),
        "\n*Reference* (no library solver): w* by "
        f"{NEWTON_STEPS} dense Newton steps from 0 (‖∇_w‖∞ = {res.ref_gnorm:.1e}), dL/dt = −Jᵀ H⁻¹ ∇L_val "
        "with H = `jax.hessian(inner)` and J = `jax.jacobian(jax.grad(inner), argnums=1)`, "
        f"`jnp.linalg.solve`, float64 (‖dL/dt‖∞ = {res.ref_norm:.3e}; one jitted reference call ≈ "
        f"{res.ref_time * 1e3:.0f} ms). Its FD spot check: central differences of L (reference solve, "
        f"h = {FD_STEP:g}) on t_i for i = {res.fd_coords} (largest, median, smallest |dL/dtᵢ|) agree "
        f"with it to {res.fd_vs_ref:.1e} (max relative). *hypergrad rel. err* = ‖g − g_ref‖∞ / "
        "‖g_ref‖∞; *max elementwise* = maxᵢ |gᵢ − g_refᵢ| / |g_refᵢ| (dominated by the smallest "
        "components); *vs FD* = the library's gradient against the FD values on those coordinates; "
        "*‖w − w*‖∞ rel.* = forward solution against the reference w*. *grad − forward* = the "
        "extra time of the derivative, also in units of t_hvp (one Hessian-vector product of the "
        f"inner objective, {res.t_hvp * 1e6:.0f} µs; one value_and_grad: t_eval = "
        f"{res.t_eval * 1e6:.0f} µs, both timed in a jitted fori_loop at w*).\n\n",
        target,
        table(res),
        _preconditioned_note(jm),
        f"\nSection wall time {res.elapsed:.0f} s.\n",
    ]
    return "".join(parts)


SECTION = FunctionSection("hypergrad", SOLVERS, (f"hypergrad-logistic-{N_FEATURES}",), run, markdown)
