"""L-BFGS-B (`jm.LBFGSB`, and `jm.LBFGS` with `bounds=`, routed to it): SciPy's L-BFGS-B on the Hock–Schittkowski
bound-only problems and on bounded MGH problems, KKT conditions on random box QPs, the
bounds contract (projected start, fixed variables, infinite and scalar bounds,
pytrees, float32, vmap, errors), statuses, implicit derivatives with active bounds, the
routing of `jm.LBFGS` and the model's pieces (incrementally kept inner products against
a rebuild, the sorted Cauchy search against a sequential reference).

Compilations are the budget. Every reference problem is solved through one compiled
objective: `lax.switch` on a traced index picks the problem, and each is padded to
`N_PAD` variables with the extra ones fixed at 0 by `lower == upper` (they have zero
gradient, so L-BFGS-B's arithmetic on the others is unchanged). The box-QP tests share
one objective and shape.
"""

import functools

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from hs_bounds import BOUND_ONLY
from hypothesis import given, settings
from hypothesis import strategies as st
from problems import PROBLEMS

import jaxmin as jm
from jaxmin._constraints import Constraints

GTOL = 1e-6
FAILURES = (jm.Status.LINESEARCH_FAILED, jm.Status.STAGNATED, jm.Status.NONFINITE)


N_PAD = 10


def _padded(fns, sizes):
    """One objective `fn(x, index)` on `N_PAD` variables for all problems: problem
    `index` reads its first `sizes[index]` coordinates."""
    branches = [lambda x, f=f, n=n: f(x[:n]) for f, n in zip(fns, sizes)]
    return lambda x, index: lax.switch(index.astype(jnp.int32), branches, x)


def _pg_norm(x, g, lo, up) -> float:
    return float(np.max(np.abs(np.clip(x - g, lo, up) - x)))


@functools.cache
def _jitted_value_and_grad(fn):
    return jax.jit(jax.value_and_grad(fn))


def _scipy(fn, x0, lo, up, gtol=GTOL):
    vg = _jitted_value_and_grad(fn)
    fun = lambda x: tuple(np.asarray(v, dtype=np.float64) for v in vg(jnp.asarray(x)))
    options = {"maxcor": 10, "gtol": gtol, "ftol": 0.0, "maxiter": 5000, "maxfun": 20000}
    return scipy.optimize.minimize(fun, np.clip(x0, lo, up), jac=True, method="L-BFGS-B",
                                   bounds=list(zip(lo, up)), options=options)


# --------------------------------------------------------------------------- #
# Reference problems against SciPy
# --------------------------------------------------------------------------- #


class _Case:
    def __init__(self, name, fn, x0, lo, up, f_star=None, x_star=None):
        self.name, self.fn, self.x0, self.lo, self.up = name, fn, np.asarray(x0, float), lo, up
        self.f_star, self.x_star = f_star, x_star


def _hs_cases():
    return [_Case(p.name, p.fn, p.x0, *(np.asarray(b, float) for b in p.bounds), p.f_star,
                  p.x_star) for p in BOUND_ONLY]


MGH_NAMES = [
    "rosenbrock", "beale", "brown_badly_scaled", "helical_valley", "box_3d", "bard",
    "wood", "powell_singular", "brown_dennis", "extended_rosenbrock10",
    "discrete_boundary_value10", "broyden_tridiagonal10", "linear_full_rank10",
]


def _mgh_cases():
    """MGH problems whose unconstrained minimiser is cut off: an upper bound below it on
    even coordinates, a lower bound 1 below x0 on odd ones (the rest infinite)."""
    cases = []
    for name in MGH_NAMES:
        p = next(q for q in PROBLEMS if q.name == name)
        fn = lambda x, p=p: p.fn(x, *p.args)
        free = _scipy(fn, p.x0, np.full(p.n, -np.inf), np.full(p.n, np.inf)).x
        i = np.arange(p.n)
        up = np.where(i % 2 == 0, free - 0.2 * (1 + np.abs(free)), np.inf)
        lo = np.minimum(np.where(i % 2 == 0, -np.inf, p.x0 - 1.0), up)
        cases.append(_Case(name, fn, p.x0, lo, up))
    return cases


@functools.cache
def _cases():
    return {c.name: c for c in _hs_cases() + _mgh_cases()}


@functools.cache
def _objective():
    cases = list(_cases().values())
    return _padded([c.fn for c in cases], [c.x0.shape[0] for c in cases]), [c.name for c in cases]


@functools.cache
def _solve_both(name):
    """`(x, f, grad, status, evals)` of our solve (unpadded) and SciPy's result."""
    case = _cases()[name]
    fn, names = _objective()
    n, pad = case.x0.shape[0], np.zeros(N_PAD - case.x0.shape[0])
    index = jnp.asarray(float(names.index(name)))
    bounds = (jnp.asarray(np.concatenate([case.lo, pad])), jnp.asarray(np.concatenate([case.up, pad])))
    sol = jm.minimize(fn, jnp.asarray(np.concatenate([case.x0, pad])), jm.LBFGS(gtol=GTOL),
                      args=(index,), bounds=bounds, max_steps=5000)
    assert np.all(np.asarray(sol.x)[n:] == 0)
    ours = (sol.x[:n], float(sol.fun), sol.grad[:n], jm.Status(int(sol.status)), int(sol.num_fun_evals),
            jm.Reason(int(sol.reason)))
    return ours, _scipy(case.fn, case.x0, case.lo, case.up)


def _check_against_scipy(name):
    case = _cases()[name]
    (x, f, g, status, _, reason), ref = _solve_both(name)
    x = np.asarray(x)
    assert np.all((x >= case.lo) & (x <= case.up)), "left the bounds"
    np.testing.assert_allclose(g, _jitted_value_and_grad(case.fn)(jnp.asarray(x))[1], rtol=1e-6, atol=1e-9)
    if ref.status == 0:  # SciPy solved it: so must we, to as low an f
        # (by gtol, or where gtol is below what f's rounding resolves by ftol/precision)
        assert status == jm.Status.CONVERGED, status
        if reason == jm.Reason.GTOL:
            assert _pg_norm(x, np.asarray(g), case.lo, case.up) <= GTOL
        assert f <= ref.fun + 1e-6 * (1 + abs(ref.fun)), (f, ref.fun)
    else:
        assert status in (jm.Status.CONVERGED, *FAILURES), status
    return case, (x, f), ref


@pytest.mark.parametrize("name", [p.name for p in BOUND_ONLY])
def test_hock_schittkowski_matches_scipy(name):
    case, (x, f), ref = _check_against_scipy(name)
    if abs(f - case.f_star) <= 1e-6 * (1 + abs(case.f_star)):
        # the published minimum (HS2 and HS25 stop elsewhere from their standard start,
        # as SciPy does: see hs_bounds.py)
        np.testing.assert_allclose(x, case.x_star, rtol=1e-4, atol=1e-5)
    else:
        np.testing.assert_allclose(x, ref.x, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", MGH_NAMES)
def test_bounded_mgh_matches_scipy(name):
    case, (x, _), _ = _check_against_scipy(name)
    assert np.any((x == case.lo) | (x == case.up)), "no bound active"


def test_evaluations_at_most_scipys_median():
    ratios = []
    for name in _cases():
        ours, ref = _solve_both(name)
        if ref.status == 0:
            ratios.append(ours[4] / ref.nfev)
    assert np.median(ratios) <= 1.0, sorted(ratios)


# --------------------------------------------------------------------------- #
# Box-constrained convex quadratics: one objective, one shape, one compilation
# --------------------------------------------------------------------------- #

N = 6
QTOL = 1e-7  # f ~ 10: a tighter gtol is near what f's rounding resolves


def _quadratic(x, Q, c):
    return 0.5 * jnp.dot(x, Q @ x) + jnp.dot(c, x)


def _qp_data(seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(N, N))
    return jnp.asarray(A.T @ A + 0.1 * np.eye(N)), jnp.asarray(rng.normal(size=N) * 3)


def _assert_kkt(x, g, lo, up, gtol):
    x, g = np.asarray(x), np.asarray(g)
    assert np.all((x >= lo) & (x <= up))
    assert _pg_norm(x, g, lo, up) <= gtol
    inside = (x > lo) & (x < up)
    assert np.all(np.abs(g[inside]) <= gtol)
    assert np.all(g[(x == lo) & (lo < up)] >= -gtol)  # at a lower bound g pushes down
    assert np.all(g[(x == up) & (lo < up)] <= gtol)


@settings(max_examples=10, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1),
       kinds=st.lists(st.sampled_from(["box", "lower", "upper", "free", "fixed"]), min_size=N, max_size=N))
def test_random_box_qp_kkt_and_scipy(seed, kinds):
    Q, c = _qp_data(seed)
    rng = np.random.default_rng(seed + 1)
    a, w = rng.uniform(-2, 1, N), rng.uniform(0, 2, N)
    kinds = np.asarray(kinds)
    lo = np.where(np.isin(kinds, ["box", "lower", "fixed"]), a, -np.inf)
    up = np.where(np.isin(kinds, ["box", "upper"]), a + w, np.where(kinds == "fixed", a, np.inf))
    sol = jm.minimize(_quadratic, jnp.zeros(N), jm.LBFGS(gtol=QTOL), args=(Q, c),
                      bounds=(jnp.asarray(lo), jnp.asarray(up)))
    assert sol.status == jm.Status.CONVERGED, sol.message
    _assert_kkt(sol.x, sol.grad, lo, up, QTOL)
    # the same conditions, and second order, by the library's independent certificate
    report = jm.testing.check_optimality(_quadratic, sol, args=(Q, c), bounds=(jnp.asarray(lo), jnp.asarray(up)),
                                         atol=QTOL)
    assert report, report.why
    np.testing.assert_array_equal(np.asarray(sol.x)[kinds == "fixed"], lo[kinds == "fixed"])
    ref = _scipy(lambda x: _quadratic(x, Q, c), np.zeros(N), lo, up, gtol=1e-10)
    # |x - x*| <= |pg| / lambda_min(Q), lambda_min >= 0.1
    np.testing.assert_allclose(sol.x, ref.x, rtol=0, atol=20 * QTOL)


def _box():
    Q, c = _qp_data(0)
    lo = jnp.array([-1.0, -jnp.inf, 0.0, -0.5, -jnp.inf, 0.2])
    up = jnp.array([1.0, 0.5, jnp.inf, -0.5, jnp.inf, 0.3])
    return Q, c, lo, up


def test_start_outside_the_bounds_is_projected_first():
    Q, c, lo, up = _box()
    x0 = jnp.full(N, 10.0)
    sol = jm.minimize(_quadratic, x0, jm.LBFGS(gtol=QTOL), args=(Q, c), bounds=(lo, up))
    from_projected = jm.minimize(_quadratic, jnp.clip(x0, lo, up), jm.LBFGS(gtol=QTOL), args=(Q, c),
                                 bounds=(lo, up))
    assert sol.success
    np.testing.assert_array_equal(sol.x, from_projected.x)
    assert int(sol.num_fun_evals) == int(from_projected.num_fun_evals)
    _assert_kkt(sol.x, sol.grad, np.asarray(lo), np.asarray(up), QTOL)
    assert float(sol.x[3]) == -0.5  # lower == upper


def test_scalar_bounds_equal_full_arrays():
    Q, c, _, _ = _box()
    scalar = jm.minimize(_quadratic, jnp.zeros(N), jm.LBFGS(gtol=QTOL), args=(Q, c), bounds=(-0.3, 0.4))
    full = jm.minimize(_quadratic, jnp.zeros(N), jm.LBFGS(gtol=QTOL), args=(Q, c),
                       bounds=(jnp.full(N, -0.3), jnp.full(N, 0.4)))
    assert scalar.success
    np.testing.assert_array_equal(scalar.x, full.x)
    one_sided = jm.minimize(_quadratic, jnp.zeros(N), jm.LBFGS(gtol=QTOL), args=(Q, c), bounds=(0.0, None))
    _assert_kkt(one_sided.x, one_sided.grad, np.zeros(N), np.full(N, np.inf), QTOL)


def test_pytree_x0_with_pytree_bounds():
    Q, c, lo, up = _box()
    fn = lambda t, Q, c: _quadratic(jnp.concatenate([t["a"], t["b"].ravel()]), Q, c)
    x0 = {"a": jnp.zeros(2), "b": jnp.zeros((2, 2))}
    tree = lambda v: {"a": v[:2], "b": v[2:].reshape(2, 2)}
    sol = jm.minimize(fn, x0, jm.LBFGS(gtol=QTOL), args=(Q, c), bounds=(tree(lo), tree(up)))
    flat = jm.minimize(_quadratic, jnp.zeros(N), jm.LBFGS(gtol=QTOL), args=(Q, c), bounds=(lo, up))
    assert sol.success and jax.tree.structure(sol.x) == jax.tree.structure(x0)
    np.testing.assert_allclose(jnp.concatenate([sol.x["a"], sol.x["b"].ravel()]), flat.x, rtol=1e-8, atol=1e-10)


def test_float32():
    Q, c, lo, up = _box()
    f32 = lambda a: a.astype(jnp.float32)
    sol = jm.minimize(_quadratic, jnp.zeros(N, jnp.float32), jm.LBFGS(gtol=1e-4), args=(f32(Q), f32(c)),
                      bounds=(f32(lo), f32(up)))
    ref = jm.minimize(_quadratic, jnp.zeros(N), jm.LBFGS(gtol=QTOL), args=(Q, c), bounds=(lo, up))
    assert sol.x.dtype == jnp.float32 and sol.fun.dtype == jnp.float32
    assert sol.success, sol.message
    x = np.asarray(sol.x)
    assert np.all((x >= np.asarray(f32(lo))) & (x <= np.asarray(f32(up))))
    np.testing.assert_allclose(sol.x, ref.x, rtol=2e-3, atol=1e-3)


def test_vmap_over_bounds_equals_each_solve():
    Q, c, lo, up = _box()
    shifts = jnp.array([0.0, 0.1, 0.3])
    solve = lambda s: jm.minimize(_quadratic, jnp.zeros(N), jm.LBFGS(gtol=QTOL), args=(Q, c),
                                  bounds=(lo + s, up + s))
    batched = jax.vmap(solve)(shifts)
    for i, s in enumerate(shifts):
        one = solve(s)
        assert bool(batched.success[i])
        np.testing.assert_allclose(batched.x[i], one.x, rtol=1e-10, atol=1e-12)


def test_max_steps_status_and_hand_driven_loop():
    Q, c, lo, up = _box()
    sol = jm.minimize(_quadratic, jnp.zeros(N), jm.LBFGS(gtol=QTOL), args=(Q, c), bounds=(lo, up), max_steps=1)
    assert sol.status == jm.Status.MAX_STEPS
    # by hand, on the flat x with a `Constraints`, as minimize does
    solver, box = jm.LBFGSB(gtol=QTOL), Constraints(lower=lo, upper=up)
    x = jnp.zeros(N)
    state = solver.init(_quadratic, x, (Q, c), box)
    step = eqx.filter_jit(solver.step)
    for _ in range(50):
        if solver.terminate(state)[0]:
            break
        x, state = step(_quadratic, x, state, (Q, c), box)
    full = jm.minimize(_quadratic, jnp.zeros(N), jm.LBFGS(gtol=QTOL), args=(Q, c), bounds=(lo, up))
    # the same iterates, to rounding (XLA compiles the step alone differently)
    assert abs(int(state.num_fun_evals) - int(full.num_fun_evals)) <= 2
    np.testing.assert_allclose(x, full.x, rtol=0, atol=20 * QTOL)
    assert float(solver.optimality_norm(state)) <= QTOL


# --------------------------------------------------------------------------- #
# Feasibility of every evaluation, failures, errors
# --------------------------------------------------------------------------- #


def test_objective_is_never_evaluated_outside_the_bounds():
    lo, up = np.array([0.0, 0.5, -1.0, 1.0]), np.array([2.0, 0.7, 1.0, 3.0])
    seen = []

    def fn(x):
        jax.debug.callback(lambda v: seen.append(np.array(v)), x)
        # NaN outside the box: (x - lo)^1.5 and (up - x)^1.5 are real only inside
        inside = jnp.sum((x - lo) ** 1.5 + (up - x) ** 1.5)
        return 100.0 * (x[1] - x[0] ** 2) ** 2 + (1.0 - x[0]) ** 2 + jnp.sum((x - 3.0) ** 2) + 0.01 * inside

    sol = jm.minimize(fn, jnp.array([1.9, 0.6, 0.9, 1.1]), jm.LBFGS(gtol=1e-8), bounds=(lo, up))
    assert sol.success, sol.message
    assert len(seen) == int(sol.num_fun_evals) > 5
    pts = np.stack(seen)
    assert np.all((pts >= lo) & (pts <= up))
    ref = _scipy(fn, np.array([1.9, 0.6, 0.9, 1.1]), lo, up, gtol=1e-8)
    np.testing.assert_allclose(sol.x, ref.x, rtol=1e-6, atol=1e-8)


def test_nonfinite_objective_is_reported_not_looped_on():
    # f and g NaN beyond x = 0.5, with the minimum at 1: no step can pass the NaN wall
    fn = lambda x: (x[0] - 1.0) ** 2 + x[1] ** 2 + 0.0 * jnp.sqrt(0.5 - x[0])
    sol = jm.minimize(fn, jnp.array([0.0, 0.3]), jm.LBFGS(), bounds=(-1.0, 2.0), max_steps=200)
    assert int(sol.status) in FAILURES, sol.message
    assert int(sol.num_steps) < 200
    assert np.all(np.isfinite(sol.x)) and np.all(np.abs(sol.x) <= 2.0)
    at_nan = jm.minimize(fn, jnp.array([0.9, 0.3]), jm.LBFGS(), bounds=(-1.0, 2.0))
    assert at_nan.status == jm.Status.NONFINITE


def test_bad_bounds_raise():
    x0 = jnp.zeros(3)
    fn = lambda x: jnp.sum(x**2)
    with pytest.raises(ValueError, match="shape"):
        jm.minimize(fn, x0, jm.LBFGS(), bounds=(jnp.zeros(2), jnp.ones(3)))
    with pytest.raises(ValueError, match="above"):
        jm.minimize(fn, x0, jm.LBFGS(), bounds=(jnp.ones(3), jnp.zeros(3)))
    with pytest.raises(ValueError, match="pair"):
        jm.minimize(fn, x0, jm.LBFGS(), bounds=jnp.ones(3))
    with pytest.raises(ValueError, match="structure"):
        jm.minimize(lambda t: jnp.sum(t["a"] ** 2), {"a": x0}, jm.LBFGS(), bounds=({"b": x0}, None))
    with pytest.raises(ValueError, match="bounds"):
        jm.minimize(fn, x0, jm.NewtonCG(), bounds=(0.0, 1.0))


# --------------------------------------------------------------------------- #
# Implicit derivatives with active bounds
# --------------------------------------------------------------------------- #

RNG = np.random.default_rng(3)
X = jnp.asarray(RNG.normal(size=(20, 5)))
Y = jnp.asarray(RNG.normal(size=20) + X @ np.array([2.0, -2.0, 0.5, 1.5, -0.3]))
LO = jnp.array([-1.0, -1.0, -1.0, -1.0, -1.0])
UP = jnp.array([1.0, 1.0, 1.0, 1.0, 1.0])


def _ridge(w, lam, X, y):
    return 0.5 * jnp.sum((X @ w - y) ** 2) + 0.5 * lam * jnp.dot(w, w)


def _solve_ridge(lam, y=Y, lo=LO, up=UP):
    return jm.minimize(_ridge, jnp.zeros(5), jm.LBFGS(gtol=1e-11), args=(lam, X, y), bounds=(lo, up)).x


def _closed_form(active_lower, active_upper):
    """The solution on a fixed active set: w_A = bound, H_FF w_F = X_F^T y - H_FA w_A."""
    free = ~(active_lower | active_upper)

    def solve(lam, y, lo, up):
        H = X.T @ X + lam * jnp.eye(5)
        b = jnp.where(active_lower, lo, jnp.where(active_upper, up, 0.0))
        rhs = jnp.where(free, X.T @ y - H @ b, 0.0)
        H_ff = jnp.where(free[:, None] & free[None, :], H, jnp.eye(5))
        return jnp.where(free, jnp.linalg.solve(H_ff, rhs), b)

    return solve


def test_implicit_derivatives_with_active_bounds():
    """Jacobians in the penalty, the data and the bounds (forward and reverse mode)
    against the closed form on the solution's active set and central differences."""
    w = np.asarray(_solve_ridge(0.5))
    g = np.asarray(jax.grad(_ridge)(jnp.asarray(w), 0.5, X, Y))
    act_lo, act_up = (w == np.asarray(LO)) & (g > 0), (w == np.asarray(UP)) & (g < 0)
    active = act_lo | act_up
    assert act_lo.any() and act_up.any() and (~active).any()
    closed = _closed_form(jnp.asarray(act_lo), jnp.asarray(act_up))
    np.testing.assert_allclose(w, closed(0.5, Y, LO, UP), rtol=1e-8, atol=1e-10)
    refs = jax.jacfwd(closed, argnums=(0, 1, 2, 3))(0.5, Y, LO, UP)
    rev = jax.jacrev(_solve_ridge, argnums=(0, 1, 2, 3))(0.5, Y, LO, UP)
    fwd = jax.jacfwd(_solve_ridge, argnums=(0, 1))(0.5, Y)
    for ours, ref in zip((*rev, *fwd), (*refs, *refs[:2])):
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9)
    d_lam, d_y, _, d_up = rev
    # active coordinates do not move with fn's parameters, and follow their own bound
    assert np.all(np.asarray(d_lam)[active] == 0) and np.all(np.asarray(d_y)[active] == 0)
    i = int(np.flatnonzero(act_up)[0])
    assert abs(float(d_up[i, i]) - 1.0) < 1e-12
    # central differences (the active set does not change within +-h)
    h = 1e-3
    fd = (_solve_ridge(0.5 + h) - _solve_ridge(0.5 - h)) / (2 * h)
    np.testing.assert_allclose(d_lam, fd, rtol=1e-4, atol=1e-7)
    e = jnp.zeros(5).at[i].set(h)
    fd = (_solve_ridge(0.5, Y, LO, UP + e) - _solve_ridge(0.5, Y, LO, UP - e)) / (2 * h)
    np.testing.assert_allclose(d_up[:, i], fd, rtol=1e-4, atol=1e-7)


# --------------------------------------------------------------------------- #
# jm.LBFGSB itself, and the routing of jm.LBFGS with bounds
# --------------------------------------------------------------------------- #


def test_lbfgsb_directly_equals_lbfgs_with_bounds():
    Q, c, lo, up = _box()
    direct = jm.minimize(_quadratic, jnp.zeros(N), jm.LBFGSB(gtol=QTOL), args=(Q, c), bounds=(lo, up))
    routed = jm.minimize(_quadratic, jnp.zeros(N), jm.LBFGS(gtol=QTOL), args=(Q, c), bounds=(lo, up))
    assert direct.success
    np.testing.assert_array_equal(direct.x, routed.x)
    assert int(direct.num_fun_evals) == int(routed.num_fun_evals)
    _assert_kkt(direct.x, direct.grad, np.asarray(lo), np.asarray(up), QTOL)
    assert float(direct.optimality) == _pg_norm(direct.x, direct.grad, np.asarray(lo), np.asarray(up))


def test_routing_builds_lbfgsb_from_the_lbfgs_fields():
    assert not jm.LBFGS.takes_bounds and jm.LBFGSB.takes_bounds
    lbfgs = jm.LBFGS(history_size=4, gtol=1e-7, ftol=1e-9)
    assert eqx.tree_equal(lbfgs.with_bounds(), jm.LBFGSB(history_size=4, gtol=1e-7, ftol=1e-9)) is True
    # the default Zoom() becomes L-BFGS-B's own search; a Moré–Thuente is kept as given
    assert eqx.tree_equal(jm.LBFGS().with_bounds().linesearch, jm.linesearch.MoreThuente()) is True
    search = jm.linesearch.MoreThuente(c1=1e-4, c2=0.5)
    assert jm.LBFGS(linesearch=search).with_bounds().linesearch is search


def test_linesearch_of_lbfgsb_is_a_declared_more_thuente():
    Q, c, lo, up = _box()
    # any other search is refused, not silently replaced
    with pytest.raises(ValueError, match="MoreThuente"):
        jm.minimize(_quadratic, jnp.zeros(N), jm.LBFGS(linesearch=jm.linesearch.Backtracking()), args=(Q, c),
                    bounds=(lo, up))
    with pytest.raises(ValueError, match="MoreThuente"):
        jm.LBFGS(linesearch=jm.linesearch.Zoom(c2=0.5)).with_bounds()
    with pytest.raises(TypeError, match="MoreThuente"):
        jm.LBFGSB(linesearch=jm.linesearch.Zoom())
    # its constants are used: a tighter curvature condition changes the steps taken
    tight = jm.LBFGSB(gtol=QTOL, linesearch=jm.linesearch.MoreThuente(c2=0.1))
    sol = jm.minimize(_quadratic, jnp.zeros(N), tight, args=(Q, c), bounds=(lo, up))
    assert sol.success
    _assert_kkt(sol.x, sol.grad, np.asarray(lo), np.asarray(up), QTOL)


def test_bounds_go_to_lbfgsb_only():
    fn = lambda x: jnp.sum((x - 2.0) ** 2)
    with pytest.raises(ValueError, match="needs bounds"):
        jm.minimize(fn, jnp.zeros(3), jm.LBFGSB())
    box = Constraints(lower=jnp.zeros(3), upper=jnp.ones(3))
    with pytest.raises(ValueError, match="LBFGSB"):
        jm.LBFGS().init(lambda x: jnp.sum(x**2), jnp.zeros(3), (), box)


# --------------------------------------------------------------------------- #
# The model's pieces: kept inner products, the sorted Cauchy search
# --------------------------------------------------------------------------- #


def _tridiagonal_qp(x, b):
    # 0.5 x^T A x - b^T x, A = tridiag(-1, 2.1, -1): an obstacle problem in the box
    xp = jnp.pad(x, 1)
    return 0.5 * jnp.dot(x, 2.1 * x - xp[:-2] - xp[2:]) - jnp.dot(b, x)


def test_kept_inner_products_equal_a_rebuild():
    """After more than `history_size` steps (ring buffer wrapped), `S^T Y`, `S^T S`
    and the free-set Gram matrix, kept by one row/column per step and by the variables
    entering and leaving the free set, equal the same products from scratch."""
    from jaxmin.solvers._compact import CHANGED_FRACTION, SMALL_N, free_gram

    n, m = SMALL_N + 300, 3  # large enough for the incremental update
    b = jnp.asarray(np.random.default_rng(0).standard_normal(n))
    box = Constraints(lower=jnp.full(n, -0.5), upper=jnp.full(n, 0.5))
    solver = jm.LBFGSB(history_size=m, gtol=1e-10)
    step = eqx.filter_jit(solver.step)
    x = jnp.zeros(n)
    state = solver.init(_tridiagonal_qp, x, (b,), box)
    incremental_steps = 0
    for _ in range(4 * m):
        before = np.asarray(state.memory.free)
        x, state = step(_tridiagonal_qp, x, state, (b,), box)
        changed = np.flatnonzero(before != np.asarray(state.memory.free))
        incremental_steps += 0 < len(changed) <= n // CHANGED_FRACTION
    mem = state.memory
    assert int(mem.k) > m and incremental_steps >= 2
    ys = np.asarray(mem.ys)
    y, s = ys[:m], ys[m:]
    scale = np.max(np.abs(ys)) ** 2
    np.testing.assert_allclose(mem.sy, s @ y.T, rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(mem.ss, s @ s.T, rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(mem.free_gram, free_gram(mem.ys, mem.free), rtol=0, atol=1e-12 * scale)


def _cauchy_reference(x, g, lo, up, B):
    """BLNZ Algorithm CP, sequentially in NumPy: walk the projected-gradient path segment
    by segment, with the dense model matrix `B`; returns the Cauchy parameter `t`."""
    t = np.where(g < 0, (x - up) / np.where(g < 0, g, -1), np.where(g > 0, (x - lo) / np.where(g > 0, g, 1), np.inf))
    t = np.maximum(t, 0.0)
    d = np.where(t > 0, -g, 0.0)
    tau, z = 0.0, np.zeros_like(x)  # z = x(tau) - x
    for t_next in np.unique(t[t > 0]):
        f1, f2 = g @ d + z @ B @ d, d @ B @ d
        if f1 >= 0:
            return tau
        if -f1 / f2 < t_next - tau:
            return tau - f1 / f2
        z = z + (t_next - tau) * d
        d = np.where(t == t_next, 0.0, d)
        tau = t_next
    f1, f2 = g @ d + z @ B @ d, d @ B @ d
    return tau if f1 >= 0 else tau - f1 / f2


def test_sorted_cauchy_search_matches_sequential_reference():
    """Beyond `SCAN_BREAKPOINTS` breakpoints the Cauchy point comes from sorted prefix
    sums, `CHUNK` segments at a time; it must equal the sequential walk of BLNZ's
    Algorithm CP (here past more than one chunk)."""
    from jaxmin.solvers._cauchy import CHUNK, _scan_cauchy, breakpoints, cauchy_point
    from jaxmin.solvers._compact import add_pair, compact, empty_memory

    n, m = 2 * CHUNK + 50, 4
    rng = np.random.default_rng(1)
    A = rng.normal(size=(n, n)) / np.sqrt(n)
    A = 0.05 * (A @ A.T + 0.1 * np.eye(n))  # a flat model: the path passes many breakpoints
    lo, up = -rng.uniform(0.5, 1, n), rng.uniform(0.5, 1, n)
    x, g = rng.uniform(lo, up), rng.normal(size=n)
    memory = empty_memory(m, jnp.asarray(x))
    for s in rng.normal(size=(m + 2, n)):  # wrap the ring buffer
        memory = add_pair(memory, jnp.asarray(s), jnp.asarray(A @ s), jnp.asarray(-A @ s), jnp.array(False))
    model = compact(memory)
    ys, theta, M = np.asarray(model.ys), float(model.theta), np.asarray(model.middle)
    W = np.concatenate([ys[:m], theta * ys[m:]]).T
    B = theta * np.eye(n) - W @ M @ W.T
    args = [jnp.asarray(v) for v in (x, g, lo, up)]
    found, _ = _scan_cauchy(args[1], breakpoints(*args), model)
    assert not bool(found)  # the sorted search ran
    cp = cauchy_point(*args, model)
    t_ref = _cauchy_reference(x, g, lo, up, B)
    assert np.sum(np.asarray(breakpoints(*args)) <= t_ref) > CHUNK
    assert float(cp.t) == pytest.approx(t_ref, rel=1e-9)
    np.testing.assert_allclose(cp.x, np.clip(x - t_ref * g, lo, up), rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_blocked_and_flat_breakpoint_walks_follow_the_stable_sort(dtype):
    """Both walks of the Cauchy scan pass the breakpoints in the order of a stable
    argsort (ties by index), over padding, zeros (never passed) and infinities."""
    from jaxmin.solvers._cauchy import SCAN_BLOCK, _blocked_walk, _flat_walk

    rng = np.random.default_rng(3)
    n = 3 * SCAN_BLOCK + 17  # a partial last block
    t = rng.exponential(size=n)
    t[rng.random(n) < 0.2] = np.inf
    t[:40] = t[60:100]  # ties, also across blocks
    t = np.asarray(t.astype(dtype))
    expected = np.argsort(t, kind="stable")[: int(np.sum(np.isfinite(t))) + 1]  # one inf: the end
    for make in (_flat_walk, _blocked_walk):
        walk = make(jnp.asarray(t))

        @jax.jit
        def order(state):
            def step(state, _):
                t_next, i, aux = walk.next(state)
                return walk.passed(state, t_next, i, aux, jnp.array(False)), (t_next, i)

            return lax.scan(step, state, None, length=len(expected))[1]

        t_seq, i_seq = order(walk.state)
        np.testing.assert_array_equal(np.asarray(i_seq)[:-1], expected[:-1])
        np.testing.assert_array_equal(np.asarray(t_seq), t[expected])


@pytest.mark.parametrize("scale", [0.5, 50.0])
def test_cauchy_point_with_no_pairs_matches_sequential_reference(scale):
    """With no pair stored the model is `theta I` and, beyond the scan's breakpoints,
    the Cauchy point comes in closed form; it must be BLNZ's walk's. `scale` 0.5: the
    minimiser `1 / theta` lies among the breakpoints; 50: every coordinate reaches its
    bound first."""
    from jaxmin.solvers._cauchy import SCAN_BREAKPOINTS, _scan_cauchy, breakpoints, cauchy_point
    from jaxmin.solvers._compact import compact, empty_memory

    n = 4 * SCAN_BREAKPOINTS
    rng = np.random.default_rng(4)
    lo, up = -rng.uniform(0.1, 1, n), rng.uniform(0.1, 1, n)
    x, g = rng.uniform(lo, up), scale * rng.choice([-1.0, 1.0], n) * rng.uniform(1, 2, n)
    g[:5] = 0.0  # coordinates that never move
    if scale < 1:
        lo[5:10] = -np.inf  # some that never reach a bound below
    model = compact(empty_memory(5, jnp.asarray(x)))
    args = [jnp.asarray(v) for v in (x, g, lo, up)]
    found, _ = _scan_cauchy(args[1], breakpoints(*args), model)
    assert not bool(found)  # beyond the scan
    cp = cauchy_point(*args, model, empty=jnp.array(True))
    t_ref = _cauchy_reference(x, g, lo, up, float(model.theta) * np.eye(n))
    assert (t_ref < 1 / float(model.theta)) == (scale > 1)
    assert float(cp.t) == pytest.approx(t_ref, rel=1e-12)
    np.testing.assert_allclose(cp.x, np.clip(x - t_ref * g, lo, up), rtol=0, atol=1e-12)
    ref_t = np.asarray(breakpoints(*args))
    np.testing.assert_array_equal(cp.free, ref_t > t_ref)


def test_breakpoint_order_is_a_stable_argsort():
    from jaxmin.solvers._cauchy import breakpoint_order

    rng = np.random.default_rng(2)
    t = rng.exponential(size=300)
    t[rng.random(300) < 0.2] = 0.0
    t[rng.random(300) < 0.1] = np.inf
    t[:50] = t[50:100]  # ties
    for dtype in (jnp.float64, jnp.float32):
        ts = jnp.asarray(t, dtype)
        np.testing.assert_array_equal(breakpoint_order(ts), np.argsort(np.asarray(ts), kind="stable"))
