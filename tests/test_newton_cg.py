"""NewtonCG: the MGH problem table, SciPy Newton-CG, saddles, HVP counts, contract."""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import jaxmin as jm
from helpers import max_abs, tree_allclose
from problems import PROBLEMS

SOLVABLE = [p for p in PROBLEMS if not p.hard]
GTOL = 1e-6
# flat near their minimum: |g| = 1e-6 leaves f visibly above the published optimum
GTOL_FOR = {"penalty1_4": 1e-9, "penalty2_4": 1e-9, "osborne1": 1e-8}
SEARCHES = [jm.linesearch.Backtracking(), jm.linesearch.MoreThuente(), jm.linesearch.Zoom()]


def _reached_optimum(problem, f) -> bool:
    return any(abs(f - t) <= 1e-5 * abs(t) + 1e-9 for t in (problem.f_star, *problem.f_alternatives))


def _solve(problem, search=jm.linesearch.Backtracking()):
    gtol = GTOL_FOR.get(problem.name, GTOL)
    solver = jm.NewtonCG(linesearch=search, gtol=gtol)
    return jm.minimize(problem.fn, jnp.asarray(problem.x0), solver, args=problem.args, max_steps=5000), gtol


@pytest.mark.parametrize("problem", SOLVABLE, ids=lambda p: p.name)
def test_mgh_problem_table(problem):
    sol, gtol = _solve(problem)
    assert _reached_optimum(problem, float(sol.fun)), (float(sol.fun), problem.f_star)
    assert int(sol.status) in (jm.Status.CONVERGED, jm.Status.STAGNATED), sol.message
    if sol.success:
        assert max_abs(sol.grad) <= gtol
    assert int(sol.num_hvp_evals) > 0


@pytest.mark.parametrize("search", SEARCHES[1:], ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("name", ["rosenbrock", "helical_valley", "wood", "watson6", "broyden_banded10"])
def test_other_line_searches(name, search):
    problem = next(p for p in PROBLEMS if p.name == name)
    sol, _ = _solve(problem, search)
    assert sol.success and _reached_optimum(problem, float(sol.fun))


@functools.cache
def _scipy_newton_cg(name):
    problem = next(p for p in PROBLEMS if p.name == name)
    f = lambda x: problem.fn(x, *problem.args)
    vg = jax.jit(jax.value_and_grad(f))
    hessp = jax.jit(lambda x, v: jax.jvp(jax.grad(f), (x,), (v,))[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return scipy.optimize.minimize(
            lambda x: tuple(np.asarray(v, dtype=np.float64) for v in vg(x)), problem.x0, jac=True,
            hessp=lambda x, v: np.asarray(hessp(x, v)), method="Newton-CG",
            options=dict(xtol=1e-12, maxiter=5000),
        )


def test_against_scipy_newton_cg():
    """Same solutions as SciPy's Newton-CG where it succeeds, with about as many
    evaluations plus Hessian-vector products (median over the table; measured 1.05x).

    jaxmin counts the gradient evaluation that linearising costs at each Newton step
    (one per step), after which every product is a tangent pass alone; each of SciPy's
    `hessp` calls re-runs the gradient too but counts only as a product."""
    ratios = []
    for problem in SOLVABLE:
        ref = _scipy_newton_cg(problem.name)
        if not _reached_optimum(problem, ref.fun):
            continue
        sol, _ = _solve(problem)
        assert abs(float(sol.fun) - ref.fun) <= 1e-5 * abs(ref.fun) + 1e-9, problem.name
        ratios.append((int(sol.num_fun_evals) + int(sol.num_hvp_evals)) / (ref.nfev + ref.nhev))
    assert len(ratios) >= 20
    assert np.median(ratios) <= 1.1


def _saddle(z):
    return z[0] ** 2 - z[1] ** 2 + z[1] ** 4  # saddle at 0, minima at (0, +-1/sqrt 2)


@pytest.mark.parametrize("search", SEARCHES, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("y0", [1e-3, 1e-8])
def test_leaves_a_saddle_for_a_minimum(search, y0):
    # From (1, y0) the first Newton step lands next to the saddle; negative curvature
    # in y must carry the iterates to a minimum instead of stopping there.
    sol = jm.minimize(_saddle, jnp.array([1.0, y0]), jm.NewtonCG(linesearch=search, gtol=1e-8))
    assert sol.success
    np.testing.assert_allclose(sol.fun, -0.25, rtol=1e-10)
    np.testing.assert_allclose(sol.x, jnp.array([0.0, 1 / np.sqrt(2.0)]), atol=1e-7)


def _quadratic(x, A, b):
    return 0.5 * x @ A @ x - b @ x


def test_quadratic_in_one_newton_step_with_exact_cg():
    rng = np.random.default_rng(0)
    n = 8
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    A = jnp.asarray(Q @ np.diag(np.logspace(0, 3, n)) @ Q.T)
    b = jnp.asarray(rng.normal(size=n))
    solver = jm.NewtonCG(linear_solver=jm.linear.TruncatedCG(rtol=1e-12), gtol=1e-8)
    sol = jm.minimize(_quadratic, jnp.zeros(n), solver, args=(A, b))
    assert sol.success
    np.testing.assert_allclose(sol.x, jnp.linalg.solve(A, b), rtol=1e-8)
    assert int(sol.num_steps) == 1
    # CG on n distinct eigenvalues: n products in exact arithmetic; rounding at
    # cond 1e3 and rtol 1e-12 costs a few more
    assert n <= int(sol.num_hvp_evals) <= 2 * n
    assert int(sol.num_hvp_evals) == int(sol.state.cg_steps)


def test_ill_conditioned_quadratic_needs_few_steps():
    # cond 1e6: L-BFGS needs thousands of steps (benchmarks), Newton-CG a handful
    n = 200
    lam = jnp.logspace(-6, 0, n)
    fn = lambda x: 0.5 * jnp.sum(lam * (x - 1.0) ** 2)
    sol = jm.minimize(fn, jnp.zeros(n), jm.NewtonCG(gtol=1e-9))
    assert sol.success
    assert int(sol.num_steps) <= 20
    np.testing.assert_allclose(sol.x, jnp.ones(n), atol=1e-3 / 1e-6 * 1e-9 * 10)


def test_every_linear_solver():
    rng = np.random.default_rng(1)
    n = 6
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    A = jnp.asarray(Q @ np.diag(np.logspace(0, 2, n)) @ Q.T)
    b = jnp.asarray(rng.normal(size=n))
    import lineax as lx

    for linear in [jm.linear.TruncatedCG(), jm.linear.CG(rtol=1e-10), jm.linear.Lineax(lx.LU())]:
        sol = jm.minimize(_quadratic, jnp.zeros(n), jm.NewtonCG(linear_solver=linear, gtol=1e-9), args=(A, b))
        assert sol.success, type(linear).__name__
        np.testing.assert_allclose(sol.x, jnp.linalg.solve(A, b), rtol=1e-7)


def _rosenbrock(x, a):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (a - x[:-1]) ** 2)


def test_vmap_jit_pytree_float32():
    solver = jm.NewtonCG(gtol=1e-8)
    x0s = jnp.array([[-1.2, 1.0], [2.0, 2.0], [0.5, -0.5]])
    batched = jax.vmap(lambda x0: jm.minimize(_rosenbrock, x0, solver, args=(1.0,)))(x0s)
    for i in range(3):
        single = jm.minimize(_rosenbrock, x0s[i], solver, args=(1.0,))
        assert int(batched.num_steps[i]) == int(single.num_steps)
        assert int(batched.num_hvp_evals[i]) == int(single.num_hvp_evals)
        np.testing.assert_allclose(batched.x[i], single.x, rtol=1e-12)
    jitted = jax.jit(lambda x0: jm.minimize(_rosenbrock, x0, solver, args=(1.0,)).x)(x0s[0])
    np.testing.assert_allclose(jitted, jnp.ones(2), rtol=1e-7)

    target = {"w": jnp.arange(4.0).reshape(2, 2), "b": jnp.array(-1.0)}
    tree_fn = lambda t: sum(jnp.sum((u - v) ** 2) for u, v in zip(jax.tree.leaves(t), jax.tree.leaves(target)))
    sol = jm.minimize(tree_fn, jax.tree.map(jnp.zeros_like, target), solver)
    assert tree_allclose(sol.x, target, rtol=1e-8, atol=1e-10)

    sol = jm.minimize(_rosenbrock, jnp.array([-1.2, 1.0], jnp.float32), jm.NewtonCG(gtol=1e-4), args=(1.0,))
    assert sol.x.dtype == jnp.float32 and int(sol.status) in (jm.Status.CONVERGED, jm.Status.STAGNATED)
    np.testing.assert_allclose(sol.x, jnp.ones(2), atol=1e-3)


def test_statuses_and_bad_input():
    sol = jm.minimize(_rosenbrock, jnp.array([jnp.nan, 1.0]), jm.NewtonCG(), args=(1.0,))
    assert int(sol.status) == jm.Status.NONFINITE
    sol = jm.minimize(_rosenbrock, jnp.array([-1.2, 1.0]), jm.NewtonCG(gtol=1e-10), args=(1.0,), max_steps=3)
    assert int(sol.status) == jm.Status.MAX_STEPS
    with pytest.raises(ValueError, match="unconstrained"):
        jm.minimize(_rosenbrock, jnp.zeros(2), jm.NewtonCG(), args=(1.0,), eq=lambda x: x)
    with pytest.raises(TypeError, match="linear_solver"):
        jm.NewtonCG(linear_solver="cg")
