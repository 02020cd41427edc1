"""jm.SQP: Hock-Schittkowski problems against SciPy SLSQP, infeasible and degenerate
problems, multipliers, vmap, float32, verbose, bad input, and derivatives of solutions
(implicit differentiation of the KKT conditions) against closed forms and finite
differences.

Compilations are the budget: the HS problems of one dimension share one objective
(`hs_constrained.ProblemGroup`, a `lax.switch` on a traced index), so each group
compiles once.
"""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hs_constrained import CONSTRAINED, groups
from hs_problems import all_problems

import jaxmin as jm
from helpers import callback_objective

GTOL, CTOL = 1e-6, 1e-8
SOLVER = jm.SQP(gtol=GTOL, ctol=CTOL)
TIGHT = jm.SQP(gtol=1e-10, ctol=1e-12)  # for comparisons with closed forms
MAX_STEPS = 200

# Problems where a local method from the standard start reaches another KKT point or
# stops early, so neither jaxmin nor SLSQP reports the published optimum:
# - hs016, hs020, hs033: another local minimum (f = 23.1447, 40.1987, -4) from the
#   start (both solvers);
# - hs025: the gradient underflows at the start (a KKT point to rounding, see hs_bounds);
# - hs013: LICQ fails at the minimiser (1, 0): no multipliers exist, so the iterates
#   approach it with multipliers growing without bound and stop short of f* = 1.
KNOWN_HARD = {"hs013", "hs016", "hs020", "hs025", "hs033"}
# Problems SLSQP solves and jaxmin does not (yet), each checked for a truthful verdict
# (none now). hs106 (badly scaled: x from 10 to 1e4, constraint terms up to 1e6,
# multipliers from 1e-2 to 1e4) was one until the merit function got one penalty per
# constraint (Powell 1978, as SLSQP) and the QP's rows were equilibrated: with one
# penalty `max|lam|` the curvature of the 1e6-scale constraints cut every step to
# alpha = 1e-3 ... 1e-9 (LINESEARCH_FAILED at f = 10057), and the unscaled rows of
# size 2.5e-3 drowned in the ridge of the QP's Schur complement.
KNOWN_MISSES: set[str] = set()


def _violation(p, x) -> float:
    x = jnp.asarray(x)
    v = 0.0
    if p.eq is not None:
        v = max(v, float(jnp.max(jnp.abs(p.eq(x)))))
    if p.ineq is not None:
        v = max(v, float(jnp.max(-p.ineq(x), initial=0.0)))
    if p.bounds is not None:
        lo, up = (np.asarray(b, float) for b in p.bounds)
        v = max(v, float(np.max(np.maximum(lo - np.asarray(x), 0))), float(np.max(np.maximum(np.asarray(x) - up, 0))))
    return v


def _solved(p, f, x) -> bool:
    return abs(f - p.f_star) <= 1e-6 * max(1.0, abs(p.f_star)) and _violation(p, x) <= 1e-6


@pytest.fixture(scope="module")
def hs_results():
    """`{name: (jaxmin (solved, evals, status), slsqp (solved, nfev))}` over every HS problem."""
    out = {}
    for group in groups(all_problems()):
        for k, p in enumerate(group.problems):
            sol = jm.minimize(group.fn, jnp.asarray(p.x0), SOLVER, args=(jnp.int32(k),), eq=group.eq,
                              ineq=group.ineq, bounds=group.bounds(p), max_steps=MAX_STEPS)
            ref = group.slsqp(k, p, jnp.float64, ftol=1e-10, maxiter=MAX_STEPS)
            out[p.name] = (
                (_solved(p, float(sol.fun), sol.x), int(sol.num_fun_evals), int(sol.status)),
                (_solved(p, float(ref.fun), ref.x), int(ref.nfev)),
            )
    return out


def test_hs_at_least_25_problems(hs_results):
    assert len(hs_results) >= 25
    assert len(CONSTRAINED) >= 16


@pytest.mark.parametrize("name", [p.name for p in all_problems()])
def test_hs_problem(hs_results, name):
    (solved, _, status), _ = hs_results[name]
    if name in KNOWN_HARD:
        # reported, never a crash or hang
        assert status in {s.value for s in jm.Status}
        return
    if name in KNOWN_MISSES:
        # not solved, and not claimed: a failure verdict, and not a false certificate
        assert not solved and status not in (jm.Status.CONVERGED, jm.Status.INFEASIBLE), status
        return
    assert solved
    assert status == jm.Status.CONVERGED


def test_hs_versus_slsqp(hs_results):
    ours = {n for n, (r, _) in hs_results.items() if r[0]}
    theirs = {n for n, (_, r) in hs_results.items() if r[0]}
    print(f"\nHS problems solved: jaxmin SQP {len(ours)}/{len(hs_results)}, SciPy SLSQP {len(theirs)}; "
          f"only jaxmin: {sorted(ours - theirs)}; only SLSQP: {sorted(theirs - ours)}")
    # more than SLSQP (measured 62 of 67 to SLSQP's 61: jaxmin alone solves hs002, SLSQP
    # none alone), and never a false INFEASIBLE certificate: every HS problem is feasible
    assert len(ours) > len(theirs)
    assert theirs - ours <= KNOWN_MISSES, f"SLSQP solves {sorted(theirs - ours)} which jaxmin does not"
    assert not [n for n, (r, _) in hs_results.items() if r[2] == jm.Status.INFEASIBLE]
    both = sorted(ours & theirs)
    ratio = np.median([hs_results[n][0][1] / hs_results[n][1][1] for n in both])
    print(f"median evaluations jaxmin / SLSQP nfev on problems both solve: {ratio:.2f}")
    # measured 1.00 (target <= 1); the slack absorbs a count shifting by one on another BLAS
    assert ratio <= 1.1


def test_exact_hessian_option():
    # the exact (eigenvalue-modified) Lagrangian Hessian on the n = 4 problems: all
    # solved, in no more iterations than damped BFGS in total
    (group,) = [g for g in groups(all_problems()) if g.n == 4]
    steps = {False: 0, True: 0}
    for k, p in enumerate(group.problems):
        for exact in (False, True):
            sol = jm.minimize(group.fn, jnp.asarray(p.x0), jm.SQP(gtol=GTOL, ctol=CTOL, exact_hessian=exact),
                              args=(jnp.int32(k),), eq=group.eq, ineq=group.ineq, bounds=group.bounds(p),
                              max_steps=MAX_STEPS)
            steps[exact] += int(sol.num_steps)
            if exact:
                assert _solved(p, float(sol.fun), sol.x), p.name
                assert int(sol.num_hvp_evals) == p.n * int(sol.num_steps)
    assert steps[True] <= steps[False]


# --------------------------------------------------------------------------- #
# infeasible and degenerate problems
# --------------------------------------------------------------------------- #


def _objective2(x):
    return (x[0] - 1.0) ** 2 + (x[1] + 2.0) ** 2


def test_infeasible_reported():
    # x0 >= 1 and x0 <= -1: no feasible point
    ineq = lambda x: jnp.stack([x[0] - 1.0, -1.0 - x[0]])
    sol = jm.minimize(_objective2, jnp.array([0.3, 0.0]), SOLVER, ineq=ineq, max_steps=100)
    assert sol.status == jm.Status.INFEASIBLE
    assert not sol.success
    assert "constraints could not be satisfied" in sol.message
    assert np.all(np.isfinite(sol.x))
    # the free coordinate still goes to its minimiser; the other sits where the
    # violation is least (any point of [-1, 1] for the l1 violation)
    assert abs(float(sol.x[1]) + 2.0) < 1e-6
    with pytest.raises(RuntimeError, match="could not be satisfied"):
        jm.minimize(_objective2, jnp.array([0.3, 0.0]), SOLVER, ineq=ineq, max_steps=100, throw=True)


def test_degenerate_hs013():
    # LICQ fails at x* = (1, 0): the solve terminates with a status, feasible, near x*,
    # with a multiplier that has blown up (none exists at x*)
    (p,) = [q for q in CONSTRAINED if q.name == "hs013"]
    sol = jm.minimize(p.fn, jnp.asarray(p.x0), SOLVER, ineq=p.ineq,
                      bounds=tuple(jnp.asarray(b) for b in p.bounds), max_steps=MAX_STEPS)
    assert np.all(np.isfinite(sol.x))
    assert _violation(p, sol.x) <= 1e-6
    assert abs(float(sol.fun) - 1.0) < 1e-2
    assert float(sol.multipliers[1][0]) > 1e2
    # in float32 it stalls short of x*: a failure whose advice names the degeneracy
    sol32 = jm.minimize(p.fn, jnp.asarray(p.x0, jnp.float32), jm.SQP(), ineq=p.ineq,
                        bounds=tuple(jnp.asarray(b, jnp.float32) for b in p.bounds))
    assert int(sol32.reason) == jm.Reason.STALLED and not sol32.success
    assert "dependent" in sol32.message and "NewtonCG" not in sol32.message, sol32.message


def test_infeasible_start_equality():
    # from far off the circle x.x = 4: x* = -(sqrt 2, sqrt 2)
    sol = jm.minimize(lambda x: x[0] + x[1], jnp.array([5.0, -7.0]), TIGHT,
                      eq=lambda x: jnp.stack([x @ x - 4.0]))
    assert sol.success
    np.testing.assert_allclose(sol.x, [-math.sqrt(2.0)] * 2, rtol=1e-9)


# --------------------------------------------------------------------------- #
# multipliers and sign convention
# --------------------------------------------------------------------------- #


def _linear(x, c):
    return jnp.dot(c, x)


def _disk(x, c, r):
    return jnp.stack([r**2 - x @ x])


def test_multipliers_sign_convention():
    # min x1 + x2 on the circle |x|^2 = 2: x* = (-1, -1), grad f = lam grad c, lam = -1/2
    c = jnp.array([1.0, 1.0])
    sol = jm.minimize(_linear, jnp.array([0.5, -0.2]), TIGHT, args=(c,),
                      eq=lambda x, c: jnp.stack([x @ x - 2.0]))
    assert sol.success
    np.testing.assert_allclose(sol.x, [-1.0, -1.0], rtol=1e-7)
    lam_eq, lam_in = sol.multipliers
    assert lam_in.shape == (0,)
    np.testing.assert_allclose(lam_eq, [-0.5], rtol=1e-7)
    # inside the disk 2 - |x|^2 >= 0: lam = +1/2 >= 0
    sol = jm.minimize(_disk_problem, jnp.array([0.1, 0.2]), TIGHT, args=(c, jnp.asarray(math.sqrt(2.0))),
                      ineq=_disk)
    lam_eq, lam_in = sol.multipliers
    assert lam_eq.shape == (0,)
    np.testing.assert_allclose(lam_in, [0.5], rtol=1e-7)
    # grad f = J^T lam at the solution
    np.testing.assert_allclose(sol.grad, jax.jacfwd(_disk)(sol.x, c, math.sqrt(2.0)).T @ lam_in, atol=1e-7)


def _disk_problem(x, c, r):
    return jnp.dot(c, x)


def test_bound_multiplier_and_bounds_kept():
    # sqrt is undefined below 0: iterates must stay in [0, 0.2] (the unconstrained
    # minimiser is 0.25 per coordinate)
    fn = lambda x: -jnp.sum(jnp.sqrt(x)) + 2.0 * jnp.sum(x**2)
    sol = jm.minimize(fn, jnp.array([0.9, 0.01, 0.5]), TIGHT, bounds=(0.0, 0.2),
                      ineq=lambda x: jnp.stack([1.0 - jnp.sum(x)]))
    assert sol.success
    np.testing.assert_allclose(sol.x, [0.2, 0.2, 0.2], rtol=1e-10)
    # upper bounds active: g = w (w = w_lower - w_upper < 0)
    g = -0.5 / np.sqrt(0.2) + 4.0 * 0.2
    np.testing.assert_allclose(sol.state.w, [g] * 3, rtol=1e-7)


def test_unconstrained():
    # no constraints at all (bounds-only problems: the HS sweep)
    sol = jm.minimize(lambda x: jnp.sum((x - 2.0) ** 2), jnp.zeros(3), SOLVER)
    assert sol.success and sol.multipliers[0].shape == (0,) and sol.multipliers[1].shape == (0,)
    np.testing.assert_allclose(sol.x, 2.0, rtol=1e-8)


def test_objective_differentiable_only_once_skips_the_certificate():
    # a simulator behind a callback, its gradient a callback too: JAX has no second
    # derivative, so a PRECISION stop goes uncertified (no Hessian-vector product) and
    # the first-order tests decide; the minimiser, 1 - 0.1 = 0.9 per coordinate, lies
    # inside the bounds [0, 2]
    def value(x):
        return np.float32(np.sum((x - 1.0) ** 2) + 0.2 * np.sum(x))

    def gradient(x):
        return (2 * (x - 1.0) + 0.2).astype(np.float32)

    fn = callback_objective(value, gradient)
    sol = jm.minimize(fn, jnp.full(3, 0.1, jnp.float32), jm.SQP(), bounds=(0.0, 2.0))
    assert sol.success, sol.message
    np.testing.assert_allclose(sol.x, 0.9, rtol=1e-5)
    assert int(sol.num_hvp_evals) == 0


# --------------------------------------------------------------------------- #
# vmap, float32, verbose, pytrees, bad input
# --------------------------------------------------------------------------- #


def test_vmap_over_x0_and_parameter():
    c = jnp.array([1.0, 2.0])

    def solve(x0, r):
        return jm.minimize(_disk_problem, x0, TIGHT, args=(c, r), ineq=_disk)

    x0s = jnp.array([[0.1, 0.2], [-0.5, 0.3], [2.0, 2.0]])
    radii = jnp.array([0.5, 1.0, 2.0])
    batched = jax.vmap(solve)(x0s, radii)
    for i in range(3):
        single = solve(x0s[i], radii[i])
        np.testing.assert_allclose(batched.x[i], single.x, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(batched.x[i], -radii[i] * c / jnp.linalg.norm(c), rtol=1e-7)
    assert np.all(batched.success)


def test_float32():
    (p,) = [q for q in CONSTRAINED if q.name == "hs071"]
    x0 = jnp.asarray(p.x0, jnp.float32)
    bounds = tuple(jnp.asarray(b, jnp.float32) for b in p.bounds)
    sol = jm.minimize(p.fn, x0, jm.SQP(gtol=1e-3, ctol=1e-4), eq=p.eq, ineq=p.ineq, bounds=bounds)
    assert sol.x.dtype == jnp.float32 and sol.multipliers[0].dtype == jnp.float32
    assert sol.success
    assert abs(float(sol.fun) - p.f_star) <= 2e-3 * p.f_star


def test_verbose(capfd):
    # the step lines come from host callbacks, written to the file descriptor
    jm.minimize(_disk_problem, jnp.array([0.1, 0.2]), TIGHT, args=(jnp.array([1.0, 1.0]), jnp.asarray(1.0)),
                ineq=_disk, verbose=True)
    jax.effects_barrier()
    out = capfd.readouterr().out
    assert "kkt" in out and re.search(r"^step\s+1\s", out, re.MULTILINE)


def test_pytree_x0():
    fn = lambda x: jnp.sum(x["a"] ** 2) + x["b"] ** 2
    eq = lambda x: jnp.stack([jnp.sum(x["a"]) + x["b"] - 3.0])
    sol = jm.minimize(fn, {"a": jnp.zeros(2), "b": jnp.array(0.0)}, SOLVER, eq=eq)
    assert sol.success
    np.testing.assert_allclose(sol.x["a"], [1.0, 1.0], rtol=1e-8)


def test_bad_input():
    fn = lambda x: jnp.sum(x**2)
    with pytest.raises(ValueError, match="floating"):
        jm.minimize(fn, jnp.zeros(2), SOLVER, eq=lambda x: jnp.array([1, 2]))
    with pytest.raises(ValueError, match="SQP"):
        jm.minimize(fn, jnp.zeros(2), jm.LBFGS(), eq=lambda x: x)
    with pytest.raises(TypeError, match="Backtracking"):
        jm.SQP(linesearch=jm.linesearch.Zoom())
    with pytest.raises(ValueError, match="ctol"):
        jm.SQP(ctol=-1.0)


# --------------------------------------------------------------------------- #
# derivatives through the solution
# --------------------------------------------------------------------------- #


def _sq_dist(x, y):
    return 0.5 * jnp.sum((x - y) ** 2)


def _simplex_eq(x, y):
    return jnp.stack([jnp.sum(x) - 1.0])


def project_simplex(y):
    sol = jm.minimize(_sq_dist, jnp.full_like(y, 1.0 / y.shape[0]), TIGHT, args=(y,), eq=_simplex_eq,
                      bounds=(0.0, jnp.inf))
    return sol.x


Y = jnp.array([0.5, 0.3, -0.2, 0.6, -1.0])


def _simplex_reference(y):
    # sort-based projection (Held et al. 1974); Jacobian from the active set S
    u = np.sort(y)[::-1]
    css = np.cumsum(u)
    k = np.nonzero(u * np.arange(1, len(y) + 1) > css - 1.0)[0][-1]
    tau = (css[k] - 1.0) / (k + 1)
    x = np.maximum(y - tau, 0.0)
    s = x > 0
    J = np.zeros((len(y), len(y)))
    J[np.ix_(s, s)] = np.eye(s.sum()) - 1.0 / s.sum()
    return x, J


def test_simplex_projection_and_jacobian():
    x_ref, J_ref = _simplex_reference(np.asarray(Y))
    assert (x_ref == 0).sum() == 2  # two bounds active
    np.testing.assert_allclose(project_simplex(Y), x_ref, atol=1e-9)
    np.testing.assert_allclose(jax.jacfwd(project_simplex)(Y), J_ref, atol=1e-7)
    np.testing.assert_allclose(jax.jacrev(project_simplex)(Y), J_ref, atol=1e-7)


def _disk_solution(r, c):
    return jm.minimize(_disk_problem, jnp.array([0.1, -0.1]), TIGHT, args=(c, r), ineq=_disk).x


def test_disk_radius_derivative():
    c = jnp.array([3.0, -4.0])
    r = jnp.asarray(2.0)
    expected = -c / jnp.linalg.norm(c)  # x* = -r c / |c|
    np.testing.assert_allclose(_disk_solution(r, c), r * expected, rtol=1e-8)
    np.testing.assert_allclose(jax.jacfwd(_disk_solution)(r, c), expected, rtol=1e-7)
    np.testing.assert_allclose(jax.jacrev(_disk_solution)(r, c), expected, rtol=1e-7)
    # dx*/dc = -r (I / |c| - c c^T / |c|^3)
    n = float(jnp.linalg.norm(c))
    dxdc = -2.0 * (np.eye(2) / n - np.outer(c, c) / n**3)
    np.testing.assert_allclose(jax.jacrev(_disk_solution, argnums=1)(r, c), dxdc, rtol=1e-6, atol=1e-9)
    # central finite differences of the solve itself
    h = 1e-2  # x*(r) is linear in r: no truncation error, only the solves' error / h
    fd = (_disk_solution(r + h, c) - _disk_solution(r - h, c)) / (2 * h)
    np.testing.assert_allclose(jax.jacfwd(_disk_solution)(r, c), fd, rtol=1e-6)


def test_grad_of_optimal_value_and_multiplier_tangent():
    # f*(r) = -r |c|: df*/dr = -|c| (envelope theorem) ; lam(r) = |c| / (2 r)
    c = jnp.array([3.0, -4.0])

    def value(r):
        return jm.minimize(_disk_problem, jnp.array([0.1, -0.1]), TIGHT, args=(c, r), ineq=_disk).fun

    def multiplier(r):
        return jm.minimize(_disk_problem, jnp.array([0.1, -0.1]), TIGHT, args=(c, r), ineq=_disk).multipliers[1][0]

    np.testing.assert_allclose(jax.grad(value)(2.0), -5.0, rtol=1e-7)
    np.testing.assert_allclose(multiplier(2.0), 5.0 / 4.0, rtol=1e-7)
    np.testing.assert_allclose(jax.grad(multiplier)(2.0), -5.0 / 8.0, rtol=1e-6)


def test_bound_derivative_flows():
    # min (x - 2)^2 with x <= u: x* = u, dx*/du = 1 while the bound is active
    def solve(u):
        return jm.minimize(lambda x: jnp.sum((x - 2.0) ** 2), jnp.zeros(1), TIGHT,
                           bounds=(-jnp.inf, jnp.reshape(u, (1,)))).x[0]

    np.testing.assert_allclose(jax.grad(solve)(1.0), 1.0, rtol=1e-10)
    np.testing.assert_allclose(jax.grad(solve)(3.0), 0.0, atol=1e-10)
