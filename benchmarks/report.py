"""Markdown tables and a PNG chart from the benchmark rows."""

from __future__ import annotations

import math
import os
import platform
import sys
from importlib import metadata

import numpy as np

from .problems import GTOL
from .protocol import Options
from .runners import PEER_LABELS
from .suite import HarnessResult, Row


def fmt_time(t: float | None) -> str:
    if t is None or (isinstance(t, float) and math.isnan(t)):
        return "–"
    if t < 1e-5:
        return f"{t * 1e6:.2f} µs"
    if t < 1e-3:
        return f"{t * 1e6:.0f} µs"
    if t < 1.0:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.2f} s"


def _fmt_g(g: float | None) -> str:
    if g is None:
        return "–"
    return f"{g:.1e} {'✓' if g <= GTOL else '✗'}"


def _fmt_f(f: float | None) -> str:
    return "–" if f is None else f"{f:.3e}"


def label(name: str) -> str:
    return PEER_LABELS.get(name, name)


def _steady_cell(r: Row) -> str:
    s = fmt_time(r.steady)
    return s + (f" (n={r.n_steady})" if r.steady is not None and r.n_steady < 5 else "")


def _notes(r: Row) -> str:
    notes = []
    if r.ok is not None and not bool(np.all(r.ok)) and r.error is None:
        notes.append("solver reports failure")
    if r.note:
        notes.append(r.note)
    return "; ".join(notes)


def _pair(a, b) -> str:
    return f"{a} / {b}"


def problem_table(rows: list[Row]) -> str:
    head = (
        "| problem | solver | first call | steady | ratio | iters (std / steady start) | "
        "evals (std / steady) | ‖g‖∞ (std / steady) | f (std) | jaxmin floor | notes |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    lines = []
    for r in rows:
        if r.error:
            lines.append(f"| {r.problem} | {label(r.solver)} | {r.error} | | | | | | | | |")
            continue
        ratio = "–" if r.ratio is None else f"{r.ratio:.2f}×"
        floor = fmt_time(r.floor) if r.floor is not None else ""
        g = "–" if r.gnorm is None else f"{r.gnorm:.1e} / {r.gnorm_s:.1e} {'✓' if r.met_target else '✗'}"
        lines.append(
            f"| {r.problem} | {label(r.solver)} | {fmt_time(r.first)} | {_steady_cell(r)} | {ratio} | "
            f"{_pair(r.iters, r.iters_s)} | {_pair(r.nfev, r.nfev_s)} | {g} | {_fmt_f(r.f)} | "
            f"{floor} | {_notes(r)} |"
        )
    return head + "\n".join(lines) + "\n"


def _sum(a, b):
    return None if a is None or b is None else a + b


def _fmt_ratio(x: float) -> str:
    return f"{x:.2f}×" if x >= 0.095 else f"{x:.2g}×"


def newton_table(rows: list[Row], reference: str) -> str:
    """The Newton-CG section: HVPs and evaluations + HVPs, ratio to ``reference``."""
    ref = label(reference)
    head = (
        f"| problem | solver | first call | steady | × {ref} | iters (std / steady start) | "
        "evals (std / steady) | HVPs (std / steady) | evals + HVPs (std / steady) | "
        "‖g‖∞ (std / steady) | jaxmin floor | notes |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    lines = []
    for r in rows:
        if r.error:
            lines.append(f"| {r.problem} | {label(r.solver)} | {r.error} | | | | | | | | | |")
            continue
        ratio = "–" if r.ratio is None else _fmt_ratio(r.ratio)
        floor = fmt_time(r.floor) if r.floor is not None else ""
        g = "–" if r.gnorm is None else f"{r.gnorm:.1e} / {r.gnorm_s:.1e} {'✓' if r.met_target else '✗'}"
        lines.append(
            f"| {r.problem} | {label(r.solver)} | {fmt_time(r.first)} | {_steady_cell(r)} | {ratio} | "
            f"{_pair(r.iters, r.iters_s)} | {_pair(r.nfev, r.nfev_s)} | {_pair(r.nhvp, r.nhvp_s)} | "
            f"{_pair(_sum(r.nfev, r.nhvp), _sum(r.nfev_s, r.nhvp_s))} | {g} | {floor} | {_notes(r)} |"
        )
    return head + "\n".join(lines) + "\n"


def newton_summary(problem_rows: list[list[Row]], reference: str, solvers=("jaxmin-ncg", "jaxmin-ncg-jit")) -> str:
    """The issue's targets, per jaxmin Newton-CG variant: steady ≤ 0.1× SciPy
    Newton-CG on every problem, and evaluations + HVPs ≤ SciPy Newton-CG's (median
    over problems of the per-problem ratio, for each start)."""
    ref_label = label(reference)
    out = []
    for name in solvers:
        times, work_std, work_s, missing, unmet = [], [], [], [], []
        for rows in problem_rows:
            by = {r.solver: r for r in rows}
            mine, ref = by.get(name), by.get(reference)
            if mine is None:
                continue
            if mine.error or ref is None or ref.error or mine.steady is None or ref.steady is None:
                missing.append(mine.problem)
                continue
            if not mine.met_target:
                unmet.append(mine.problem)
            times.append((mine.steady / ref.steady, mine.problem))
            w_ref = _sum(ref.nfev, ref.nhvp)
            w_ref_s = _sum(ref.nfev_s, ref.nhvp_s)
            if w_ref and _sum(mine.nfev, mine.nhvp) is not None:
                work_std.append(_sum(mine.nfev, mine.nhvp) / w_ref)
            if w_ref_s and _sum(mine.nfev_s, mine.nhvp_s) is not None:
                work_s.append(_sum(mine.nfev_s, mine.nhvp_s) / w_ref_s)
        if not times:
            if missing:
                out.append(f"- **{label(name)}**: no comparison (not run, or no {ref_label} time, on: "
                           f"{', '.join(missing)})\n")
            continue
        n_ok = sum(t <= 0.1 for t, _ in times)
        worst_t, worst_p = max(times)
        line = (
            f"- **{label(name)}**: steady ≤ 0.1× {ref_label} on {n_ok} of {len(times)} problems "
            f"(worst {_fmt_ratio(worst_t)} on {worst_p}; median {_fmt_ratio(float(np.median([t for t, _ in times])))}) "
            f"{'✓' if n_ok == len(times) else '✗'}; evals + HVPs / {ref_label}'s, median over "
            f"problems: {float(np.median(work_std)):.2f} (standard start), "
            f"{float(np.median(work_s)):.2f} (steady start) "
            f"{'✓' if work_std and work_s and np.median(work_std) <= 1 and np.median(work_s) <= 1 else '✗'}"
        )
        if unmet:
            line += f"; did NOT reach ‖g‖∞ ≤ 1e-6 on {', '.join(unmet)}"
        if missing:
            line += f"; no comparison on {', '.join(missing)}"
        out.append(line + "\n")
    return "".join(out)


def batch_table(rows: list[Row]) -> str:
    head = (
        "| problem | solver | first call | steady | ratio | iters mean/max | evals mean/max | "
        "max ‖g‖∞ | converged | notes |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    lines = []
    for r in rows:
        if r.error:
            lines.append(f"| {r.problem} | {label(r.solver)} | {r.error} | | | | | | | |")
            continue
        ratio = "–" if r.ratio is None else f"{r.ratio:.2f}×"
        its = np.asarray(r.iters)
        ev = np.asarray(r.nfev)
        notes = []
        if r.gnorm_s is not None and r.gnorm_s > GTOL:
            notes.append(f"steady batch max ‖g‖∞={r.gnorm_s:.1e} ✗")
        lines.append(
            f"| {r.problem} | {label(r.solver)} | {fmt_time(r.first)} | {_steady_cell(r)} | {ratio} | "
            f"{its.mean():.1f}/{its.max()} | {ev.mean():.1f}/{ev.max()} | {_fmt_g(r.gnorm)} | "
            f"{r.n_conv}/{r.batch} | {'; '.join(notes)} |"
        )
    return head + "\n".join(lines) + "\n"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except Exception:  # noqa: BLE001
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(command: str) -> str:
    import jax

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    libs = ", ".join(
        f"{d} {_version(d)}"
        for d in ("jax", "jaxlib", "jaxmin", "equinox", "lineax", "scipy", "optax", "optimistix", "jaxopt", "numpy")
    )
    return (
        f"- command: {command}\n"
        f"- CPU: {_cpu_model()}; os.cpu_count() = {os.cpu_count()}, usable cores = {affinity}\n"
        f"- platform: {platform.platform()}, Python {sys.version.split()[0]}\n"
        f"- JAX backend: {jax.default_backend()} ({jax.devices()[0].device_kind}), x64 = {jax.config.jax_enable_x64}\n"
        f"- versions: {libs}\n"
        f"- env: OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '(unset)')}\n"
    )


def write_chart(result: HarnessResult, options: Options, suffix: str, title: str) -> None:
    """The chart of a harness section, ``options.out + suffix + ".png"``, when the
    report is written to a file; its file name goes to ``result.chart``."""
    if options.out is None or not any(r.steady is not None for rows in result.rows for r in rows):
        return
    path = options.out + suffix + ".png"
    try:
        plot(result.rows, path, title)
        result.chart = os.path.basename(path)
    except Exception as e:  # noqa: BLE001
        options.log(f"plot failed: {type(e).__name__}: {e}")


def plot(problem_rows: list[list[Row]], path: str, title: str) -> None:
    """One group of bars per problem, one bar per timed solver."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [rows for rows in problem_rows if any(r.steady is not None for r in rows)]
    if not groups:
        return
    solvers: list[str] = []
    for rows in groups:
        for r in rows:
            if r.solver not in solvers:
                solvers.append(r.solver)
    fig, ax = plt.subplots(figsize=(max(8, 1.5 * len(groups)) + 3, 5.5))
    cmap = plt.get_cmap("tab10")
    color = {s: cmap(j % 10) for j, s in enumerate(solvers)}
    labelled = set()
    for i, rows in enumerate(groups):
        timed = [r for r in rows if r.steady is not None and not math.isnan(r.steady)]
        width = 0.8 / max(len(timed), 1)
        for k, r in enumerate(timed):
            x = i + (k - (len(timed) - 1) / 2) * width
            ax.bar(
                x, r.steady, width, color=color[r.solver],
                label=None if r.solver in labelled else label(r.solver),
                hatch="" if r.met_target else "//",
            )
            labelled.add(r.solver)
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([g[0].problem for g in groups], rotation=30, ha="right")
    ax.set_ylabel("steady time per solve [s] (median, log scale)")
    ax.set_title(title)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
