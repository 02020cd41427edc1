"""jm.SQP's verdicts in float32 (and infeasibility in both dtypes), issue 12.

- The Hock-Schittkowski table in float32 with default settings, graded to float32
  accuracy against the published optima, next to SciPy SLSQP run in the test on the
  same float32 functions: SQP solves and says so on at least as many problems, with at
  most 2 false failures and no false success away from a KKT point (checked as one in
  float64) (`FALSE_PRECISION`, the open cases: none now).
- The simplex projection (n = 10 and 200, float32 and float64) converges in a few steps
  to the sort-based closed form.
- Inconsistent constraints end INFEASIBLE from every start, in both dtypes, in few
  steps, with a message that names `ctol`.

Compilations are the budget: the HS problems of one dimension share one objective
(`hs_constrained.ProblemGroup`), the infeasible starts one `vmap`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hs_constrained import groups
from hs_problems import all_problems
from test_sqp import _violation

import jaxmin as jm

F32 = jnp.float32
# float32 grading: f within 1e-5 (relative, at least absolute 1e-5), violation 1e-4
F_TOL, V_TOL = 1e-5, 1e-4
# Points other than the published optimum where a CONVERGED verdict is truthful: each
# a first-order KKT point, checked in float64 at the float32 end point (`_kkt_error`:
# least-squares multipliers of the active rows: stationarity, their signs and
# complementarity, within `KKT_TOL`); the second-order picture (reduced Hessian of the
# Lagrangian, measured) in brackets:
# - hs016, hs020: other local minima from the standard start (f = 23.1447, 40.1987),
#   vertices at x = (-0.5, 0.7071) and (-0.5, 0.8660): two active rows with independent
#   gradients and positive multipliers (64.6, 23.8; 71.1, 191.3) [no free direction:
#   strict local minima];
# - hs033: the KKT point (0, 0, 2) (f = -4), multipliers 0.25 and 11, the bound on x1
#   weakly active [reduced Hessian -0.5 along x1: a saddle];
# - hs025: the start, where every residual's exponential is below 3.3e-9: |g| = 2e-8
#   (in exact arithmetic, not rounding), below `gtol`, in both dtypes [Hessian
#   eigenvalues within 1e-6 of 0: a plateau].
# (hs013, LICQ failing at the minimiser (1, 0), used to be claimed at f = 1.006; it has
# no KKT point there and now ends STAGNATED.)
OTHER_KKT = {"hs016": 23.1447, "hs020": 40.1987, "hs033": -4.0, "hs025": 32.835}
# CONVERGED verdicts that are false, left to the shared precision test of `_stopping`:
# none. hs038 (Wood's function) used to end PRECISION at x = (-0.9727, 0.9564, -0.9647,
# 0.9420), f = 7.876954, 9e-3 from the saddle (-0.9680, 0.9471, -0.9695, 0.9512): |g| =
# 1.3e-3, 100 times its rounding, but damped BFGS keeps B positive definite, so the QP
# predicted a decrease (~3e-8) below f's rounding and the first-order guard passed it.
# The second-order certificate of a PRECISION stop (`_sqp_step.precision_certificate`:
# CG on exact Hessian-vector products of the Lagrangian over the free coordinates)
# meets the negative curvature there and steps along it: hs038 is solved (`test_hs_float32_hs038_is_solved`).
FALSE_PRECISION: set = set()
KKT_TOL = 1e-5  # the relative float64 KKT error of a float32 end point at a KKT point


def _kkt_error(p, x) -> float:
    """The first-order KKT error at `x`, in float64: with the rows active within
    `V_TOL` (equalities, inequalities and bounds, values `c_A`) and their least-squares
    multipliers `lam` (`g = A^T lam`), the largest of the stationarity residual
    `|g - A^T lam|`, the most negative inequality multiplier and the complementarity
    `|lam_i c_i|`, relative to `max(1, |g|)`."""
    x = jnp.asarray(np.asarray(x, np.float64))
    g = np.asarray(jax.grad(p.fn)(x))
    rows, signed, values_A = [], [], []
    for c, is_eq in ((p.eq, True), (p.ineq, False)):
        if c is not None:
            values, jac = np.asarray(c(x)), np.asarray(jax.jacfwd(c)(x))
            for value, row in zip(values, jac):
                if is_eq or abs(value) <= V_TOL:
                    rows.append(row)
                    signed.append(not is_eq)
                    values_A.append(value)
    if p.bounds is not None:
        for i, (lo, up) in enumerate(zip(*p.bounds)):
            for gap, row in ((float(x[i]) - lo, np.eye(p.n)[i]), (up - float(x[i]), -np.eye(p.n)[i])):
                if abs(gap) <= V_TOL:
                    rows.append(row)
                    signed.append(True)
                    values_A.append(gap)
    A = np.asarray(rows, np.float64).reshape(-1, p.n)
    lam = np.linalg.lstsq(A.T, g, rcond=None)[0] if rows else np.zeros(0)
    signed = np.asarray(signed, bool)
    wrong_sign = max(0.0, -float(np.min(lam[signed], initial=0.0)))
    complementarity = float(np.max(np.abs(lam * np.asarray(values_A, np.float64))[signed], initial=0.0))
    scale = max(1.0, float(np.max(np.abs(g))))
    return max(float(np.max(np.abs(g - A.T @ lam))), wrong_sign, complementarity) / scale


def _grade(p, x):
    """(solved, f in float64 at x, violation)."""
    f = float(p.fn(jnp.asarray(np.asarray(x, np.float64))))
    v = _violation(p, np.asarray(x, np.float64))  # graded in float64
    return abs(f - p.f_star) <= F_TOL * max(1.0, abs(p.f_star)) and v <= V_TOL, f, v


@pytest.fixture(scope="module")
def hs_float32():
    """`{name: ((solved, converged, status, f, x), (solved, success, f))}`: SQP, SLSQP
    (`ftol=1e-6`) on the same float32 functions."""
    out = {}
    for group in groups(all_problems()):
        for k, p in enumerate(group.problems):
            sol = jm.minimize(group.fn, jnp.asarray(p.x0, F32), jm.SQP(), args=(jnp.int32(k),), eq=group.eq,
                              ineq=group.ineq, bounds=group.bounds(p, F32))
            assert sol.x.dtype == F32
            solved, f, _ = _grade(p, sol.x)
            ref = group.slsqp(k, p, F32, ftol=1e-6, maxiter=500)
            ref_solved, ref_f, _ = _grade(p, ref.x)
            out[p.name] = ((solved, bool(sol.success), jm.Status(int(sol.status)).name, f, np.asarray(sol.x)),
                           (ref_solved, bool(ref.success), ref_f))
    return out


def test_hs_float32_versus_slsqp(hs_float32):
    ours = {n for n, (r, _) in hs_float32.items() if r[0] and r[1]}
    theirs = {n for n, (_, r) in hs_float32.items() if r[0] and r[1]}
    false_failures = {n: r[2] for n, (r, _) in hs_float32.items() if r[0] and not r[1]}
    false_successes = {n: r[3] for n, (r, _) in hs_float32.items() if r[1] and not r[0]}
    print(f"\nfloat32 HS problems solved and reported so: jaxmin SQP {len(ours)}/{len(hs_float32)}, "
          f"SciPy SLSQP {len(theirs)}; SQP false failures {false_failures}, false successes {false_successes}")
    # measured: SQP 61 (of 67; 60 before hs038's certificate), SLSQP 56 (before
    # per-constraint penalties: 59); no false failure
    assert len(ours) >= len(theirs)
    assert len(false_failures) <= 2, false_failures
    # a CONVERGED verdict away from the published optimum only at a known KKT point,
    # checked as one in float64 (FALSE_PRECISION: the open exceptions, still not KKT)
    problems = {p.name: p for p in all_problems()}
    for name, f in false_successes.items():
        assert name in OTHER_KKT or name in FALSE_PRECISION, (name, f)
        error = _kkt_error(problems[name], hs_float32[name][0][4])
        if name in OTHER_KKT:
            assert abs(f - OTHER_KKT[name]) <= 1e-2 * max(1.0, abs(OTHER_KKT[name])), (name, f)
            assert error <= KKT_TOL, (name, error)
        else:
            assert error > KKT_TOL, (name, error)  # fixed? then move it to OTHER_KKT


def test_hs_float32_hs038_is_solved(hs_float32):
    # Wood's function passes a saddle (Hessian eigenvalue -0.12) where the first-order
    # precision test alone ended the solve CONVERGED, f = 7.877: the certificate's
    # negative-curvature step leaves it, and the solve ends at the minimum (f* = 0)
    solved, converged, status, f, x = hs_float32["hs038"][0]
    assert solved and converged, (status, f, x)


def test_hs_float32_never_infeasible(hs_float32):
    # every problem is feasible: INFEASIBLE would be a false certificate
    assert not [n for n, (r, _) in hs_float32.items() if r[2] == "INFEASIBLE"]


# --------------------------------------------------------------------------- #
# the float32 simplex projection
# --------------------------------------------------------------------------- #


def _sq_dist(x, y):
    return 0.5 * jnp.sum((x - y) ** 2)


def _simplex_eq(x, y):
    return jnp.stack([jnp.sum(x) - 1.0])


def _simplex_reference(y):
    u = np.sort(y)[::-1]
    css = np.cumsum(u)
    k = np.nonzero(u * np.arange(1, len(y) + 1) > css - 1.0)[0][-1]
    return np.maximum(y - (css[k] - 1.0) / (k + 1), 0.0)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("n", [10, 200])
def test_simplex_projection(n, dtype):
    # before (float32): n = 10 reached KKT 1.5e-5 at step 1, then hovered to max_steps;
    # n = 200 did not finish in 600 s. n = 200 exercises the bounds-as-bounds QP
    # solver (`_qp_pdas`): 2.3 s a solve (float64) when the bounds were QP rows
    y = np.random.default_rng(n).normal(size=n)
    sol = jm.minimize(_sq_dist, jnp.full((n,), 1.0 / n, dtype), jm.SQP(), args=(jnp.asarray(y, dtype),),
                      eq=_simplex_eq, bounds=(0.0, jnp.inf))
    assert sol.status == jm.Status.CONVERGED, sol.message
    assert sol.x.dtype == dtype
    assert int(sol.num_steps) <= 5
    atol = 1e-5 if dtype == F32 else 1e-12
    np.testing.assert_allclose(sol.x, _simplex_reference(np.asarray(jnp.asarray(y, dtype), np.float64)), atol=atol)


# --------------------------------------------------------------------------- #
# inconsistent constraints: INFEASIBLE from any start, in both dtypes
# --------------------------------------------------------------------------- #


def _objective3(x):
    return (x[0] - 1.0) ** 2 + (x[1] + 2.0) ** 2 + (x[2] - 0.5) ** 2


def _inconsistent(x):
    # x0 >= 1 and x0 <= -1; the disk |(x1, x2)| <= 1 and the half-plane x1 + x2 >= 3
    return jnp.stack([x[0] - 1.0, -1.0 - x[0], 1.0 - x[1] ** 2 - x[2] ** 2, x[1] + x[2] - 3.0])


STARTS = [(3.0, 0.0, 0.0), (0.3, 0.0, 0.0), (-5.0, 4.0, -1.0), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0),
          (-1.0, -3.0, 2.0)]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_infeasible_from_every_start(dtype):
    # before: STAGNATED (float32) or LINESEARCH_FAILED (float64) from x0 = 3
    solve = jax.jit(jax.vmap(lambda x0: jm.minimize(_objective3, x0, jm.SQP(), ineq=_inconsistent, max_steps=200)))
    sols = solve(jnp.asarray(STARTS, dtype))
    assert np.all(np.asarray(sols.status) == jm.Status.INFEASIBLE), np.asarray(sols.status)
    assert np.all(np.asarray(sols.num_steps) <= 60), np.asarray(sols.num_steps)
    x = np.asarray(sols.x, np.float64)
    assert np.all(np.isfinite(x))
    # the violation's own minimisers: x0 anywhere in [-1, 1] ((x0 - 1)^2 + (x0 + 1)^2
    # is least at 0), (x1, x2) on the diagonal between the disk and the line
    assert np.all(np.abs(x[:, 0]) <= 1.0 + 1e-3)
    np.testing.assert_allclose(x[:, 1], x[:, 2], atol=1e-2)
    # a member's message (a single solve's: the batch's are its members') names the
    # tolerance the violation stands above
    sol = jax.tree.map(lambda leaf: leaf[0], sols)
    assert sol.status == jm.Status.INFEASIBLE
    assert "`ctol`" in sol.message and "could not be satisfied" in sol.message
