"""jm.SQP's verdicts in float32 (and infeasibility in both dtypes), issue 12.

- The Hock-Schittkowski table in float32 with default settings, graded to float32
  accuracy against the published optima, next to SciPy SLSQP run in the test on the
  same float32 functions: SQP solves and says so on at least as many problems, with at
  most 2 false failures and no false success away from a known KKT point.
- The simplex projection (n = 10 and 200, float32 and float64) converges in a few steps
  to the sort-based closed form.
- Inconsistent constraints end INFEASIBLE from every start, in both dtypes, in few
  steps, with a message that names `ctol`.

Compilations are the budget: the HS problems of one dimension share one objective
(`hs_constrained.ProblemGroup`), the infeasible starts one `vmap`.
"""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from hs_constrained import groups
from hs_problems import all_problems
from test_sqp import _violation

import jaxmin as jm

F32 = jnp.float32
# float32 grading: f within 1e-5 (relative, at least absolute 1e-5), violation 1e-4
F_TOL, V_TOL = 1e-5, 1e-4
# Points other than the published optimum where a CONVERGED verdict is truthful:
# - hs016, hs020: other local minima from the standard start (f = 23.1447, 40.1987);
# - hs033: the first-order KKT point (0, 0, 2) (f = -4), a saddle;
# - hs038: Wood's function's saddle near (-0.97, 0.95, -0.97, 0.94) (f = 7.8769), a
#   first-order stationary point that float32 iterates reach and float64 ones pass;
# - hs025: the start, where every residual's exponential underflows: |g| ~ 2e-8, below
#   `gtol`, in both dtypes;
# - hs013: LICQ fails at the minimiser (1, 0), where no multipliers exist: the
#   iterates stall at an approximate KKT point on the cusp, f within 1e-2 of 1.
OTHER_KKT = {"hs016": 23.1447, "hs020": 40.1987, "hs033": -4.0, "hs038": 7.8769, "hs025": 32.835, "hs013": 1.0}


def _grade(p, x):
    """(solved, f in float64 at x, violation)."""
    f = float(p.fn(jnp.asarray(np.asarray(x, np.float64))))
    v = _violation(p, np.asarray(x, np.float64))  # graded in float64
    return abs(f - p.f_star) <= F_TOL * max(1.0, abs(p.f_star)) and v <= V_TOL, f, v


def _slsqp(fns, k, p):
    """SciPy SLSQP (`ftol=1e-6`) on the group's jitted float32 functions."""
    kk = jnp.int32(k)
    spec = jax.ShapeDtypeStruct((p.n,), F32)
    me = 0 if p.eq is None else int(jax.eval_shape(p.eq, spec).shape[0])
    mi = 0 if p.ineq is None else int(jax.eval_shape(p.ineq, spec).shape[0])
    as32 = lambda x: jnp.asarray(np.asarray(x), F32)
    cons = []
    if me:
        cons.append({"type": "eq", "fun": lambda x: np.asarray(fns["eq"](as32(x), kk), float)[:me],
                     "jac": lambda x: np.asarray(fns["Jeq"](as32(x), kk), float)[:me]})
    if mi:
        cons.append({"type": "ineq", "fun": lambda x: np.asarray(fns["ineq"](as32(x), kk), float)[:mi],
                     "jac": lambda x: np.asarray(fns["Jineq"](as32(x), kk), float)[:mi]})
    bounds = None
    if p.bounds is not None:
        bounds = [(None if math.isinf(lo) else lo, None if math.isinf(up) else up) for lo, up in zip(*p.bounds)]

    def fun(x):
        f, g = fns["fg"](as32(x), kk)
        return float(f), np.asarray(g, float)

    x0 = np.asarray(p.x0, float)
    if bounds is not None:
        x0 = np.clip(x0, *(np.asarray(b, float) for b in p.bounds))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return scipy.optimize.minimize(fun, x0, jac=True, method="SLSQP", bounds=bounds, constraints=cons,
                                       options={"ftol": 1e-6, "maxiter": 500})


@pytest.fixture(scope="module")
def hs_float32():
    """`{name: ((solved, converged, status, f), (solved, success, f))}`: SQP, SLSQP."""
    out = {}
    for group in groups(all_problems()):
        fns = {"fg": jax.jit(jax.value_and_grad(group.fn)),
               "eq": jax.jit(group.eq) if group.eq else None,
               "Jeq": jax.jit(jax.jacfwd(group.eq)) if group.eq else None,
               "ineq": jax.jit(group.ineq) if group.ineq else None,
               "Jineq": jax.jit(jax.jacfwd(group.ineq)) if group.ineq else None}
        for k, p in enumerate(group.problems):
            sol = jm.minimize(group.fn, jnp.asarray(p.x0, F32), jm.SQP(), args=(jnp.int32(k),), eq=group.eq,
                              ineq=group.ineq, bounds=group.bounds(p, F32))
            assert sol.x.dtype == F32
            solved, f, _ = _grade(p, sol.x)
            ref = _slsqp(fns, k, p)
            ref_solved, ref_f, _ = _grade(p, ref.x)
            out[p.name] = ((solved, bool(sol.success), jm.Status(int(sol.status)).name, f),
                           (ref_solved, bool(ref.success), ref_f))
    return out


def test_hs_float32_versus_slsqp(hs_float32):
    ours = {n for n, (r, _) in hs_float32.items() if r[0] and r[1]}
    theirs = {n for n, (_, r) in hs_float32.items() if r[0] and r[1]}
    false_failures = {n: r[2] for n, (r, _) in hs_float32.items() if r[0] and not r[1]}
    false_successes = {n: r[3] for n, (r, _) in hs_float32.items() if r[1] and not r[0]}
    print(f"\nfloat32 HS problems solved and reported so: jaxmin SQP {len(ours)}/{len(hs_float32)}, "
          f"SciPy SLSQP {len(theirs)}; SQP false failures {false_failures}, false successes {false_successes}")
    # measured: SQP 58 (of 64), SLSQP 54; no false failure
    assert len(ours) >= len(theirs)
    assert len(false_failures) <= 2, false_failures
    # a CONVERGED verdict away from the published optimum only at a known KKT point
    for name, f in false_successes.items():
        assert name in OTHER_KKT, (name, f)
        assert abs(f - OTHER_KKT[name]) <= 1e-2 * max(1.0, abs(OTHER_KKT[name])), (name, f)


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
