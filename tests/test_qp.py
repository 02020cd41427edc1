"""The dense QP solver of SQP (Goldfarb-Idnani dual active set), alone: KKT
certificates on random convex QPs, closed forms, SciPy, infeasibility, degeneracy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from jaxmin.solvers._qp import QP_INFEASIBLE, QP_SOLVED, solve_qp

solve = jax.jit(solve_qp)
N, ME, MI = 5, 2, 6


def _random_qp(seed, dtype=np.float64):
    """A strictly convex QP with a feasible point; `ME` equalities first."""
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(N, N))
    G = M @ M.T + 0.1 * np.eye(N)
    a = rng.normal(size=N)
    C = rng.normal(size=(ME + MI, N))
    x_feasible = rng.normal(size=N)
    b = C @ x_feasible - np.concatenate([np.zeros(ME), rng.uniform(0.0, 1.0, MI)])
    return tuple(np.asarray(v, dtype) for v in (G, a, C, b))


def _kkt_errors(G, a, C, b, is_eq, d, lam):
    s = C @ d - b
    return {
        "stationarity": np.abs(G @ d + a - C.T @ lam).max(),
        "primal": max(np.abs(s[is_eq]).max(initial=0.0), (-s[~is_eq]).max(initial=0.0)),
        "dual": (-lam[~is_eq]).max(initial=0.0),
        "complementarity": np.abs(lam[~is_eq] * s[~is_eq]).max(initial=0.0),
    }


IS_EQ = np.arange(ME + MI) < ME


@pytest.mark.parametrize("seed", range(25))
def test_random_qp_kkt_certificate(seed):
    G, a, C, b = _random_qp(seed)
    r = solve(G, a, C, b, IS_EQ)
    assert r.status == QP_SOLVED
    errors = _kkt_errors(G, a, C, b, IS_EQ, np.asarray(r.d), np.asarray(r.lam))
    assert max(errors.values()) <= 1e-9, errors
    # the multipliers vanish off the active set
    assert np.all(np.asarray(r.lam)[~np.asarray(r.active)] == 0)


@pytest.mark.parametrize("seed", range(5))
def test_random_qp_matches_scipy(seed):
    G, a, C, b = _random_qp(seed)
    r = solve(G, a, C, b, IS_EQ)
    cons = [
        {"type": "eq", "fun": lambda d: C[:ME] @ d - b[:ME], "jac": lambda d: C[:ME]},
        {"type": "ineq", "fun": lambda d: C[ME:] @ d - b[ME:], "jac": lambda d: C[ME:]},
    ]
    ref = scipy.optimize.minimize(
        lambda d: (0.5 * d @ G @ d + a @ d, G @ d + a), np.zeros(N), jac=True, method="SLSQP",
        constraints=cons, options={"ftol": 1e-14, "maxiter": 500},
    )
    # the QP is strictly convex: our minimiser is never worse than SciPy's answer, and
    # equals it where SciPy reports success
    q = lambda d: 0.5 * d @ G @ d + a @ d
    assert q(np.asarray(r.d)) <= q(ref.x) + 1e-9 * max(1.0, abs(q(ref.x)))
    if ref.success:
        np.testing.assert_allclose(r.d, ref.x, rtol=1e-6, atol=1e-7)


def test_projection_onto_halfspace_closed_form():
    # min 1/2 |d - y|^2  s.t.  c.d >= beta:  d = y + max(0, beta - c.y) c / |c|^2
    y, c, beta = np.array([1.0, -2.0, 0.5]), np.array([1.0, 2.0, -1.0]), 1.0
    r = solve(np.eye(3), -y, c[None, :], np.array([beta]), np.array([False]))
    expected = y + max(0.0, beta - c @ y) / (c @ c) * c
    np.testing.assert_allclose(r.d, expected, rtol=1e-12)
    np.testing.assert_allclose(r.lam, [(beta - c @ y) / (c @ c)], rtol=1e-12)


def test_equality_qp_closed_form():
    G, a, C, b = _random_qp(3)
    C, b = C[:ME], b[:ME]
    K = np.block([[G, -C.T], [C, np.zeros((ME, ME))]])
    ref = np.linalg.solve(K, np.concatenate([-a, b]))
    r = solve(G, a, C, b, np.ones(ME, bool))
    np.testing.assert_allclose(r.d, ref[:N], rtol=1e-10)
    np.testing.assert_allclose(r.lam, ref[N:], rtol=1e-10)


def test_infinite_bounds_rows_are_ignored():
    # rows with b = -inf (free bounds) never enter
    G, a = np.eye(2), np.array([-1.0, -1.0])
    C = np.array([[1.0, 0.0], [0.0, -1.0]])
    b = np.array([-np.inf, -0.5])  # x2 <= 0.5
    r = solve(G, a, C, b, np.zeros(2, bool))
    np.testing.assert_allclose(r.d, [1.0, 0.5])
    np.testing.assert_allclose(r.lam, [0.0, 0.5])


def test_infeasible_qp():
    r = solve(np.eye(1), np.zeros(1), np.array([[1.0], [-1.0]]), np.array([1.0, 1.0]), np.zeros(2, bool))
    assert r.status == QP_INFEASIBLE


def test_duplicate_constraints_degenerate():
    # the same active constraint twice: linearly dependent, still solved
    G, a = np.eye(2), np.zeros(2)
    C = np.array([[1.0, 1.0], [1.0, 1.0], [2.0, 2.0]])
    b = np.array([1.0, 1.0, 2.0])
    r = solve(G, a, C, b, np.zeros(3, bool))
    assert r.status == QP_SOLVED
    np.testing.assert_allclose(r.d, [0.5, 0.5], rtol=1e-12)
    np.testing.assert_allclose(C.T @ np.asarray(r.lam), [0.5, 0.5], rtol=1e-12)


def test_float32():
    G, a, C, b = _random_qp(7, np.float32)
    r = solve(G, a, C, b, IS_EQ)
    assert r.d.dtype == jnp.float32 and r.status == QP_SOLVED
    ref = solve(*_random_qp(7), IS_EQ)
    np.testing.assert_allclose(r.d, ref.d, rtol=2e-3, atol=2e-3)


def test_vmap_over_qps():
    qps = [_random_qp(s) for s in range(4)]
    batched = jax.vmap(solve, in_axes=(0, 0, 0, 0, None))(*[np.stack(v) for v in zip(*qps)], IS_EQ)
    for i, qp in enumerate(qps):
        np.testing.assert_allclose(batched.d[i], solve(*qp, IS_EQ).d, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- #
# bounds as bounds, warm starts: the primal-dual active-set solver of SQP at medium n
# --------------------------------------------------------------------------- #

from jaxmin.solvers._qp_pdas import ActiveSet, solve_qp_pdas  # noqa: E402

pdas = jax.jit(solve_qp_pdas)


def _cold(m, n):
    return ActiveSet(rows=np.zeros(m, bool), at_lower=np.zeros(n, bool), at_upper=np.zeros(n, bool))


def _simplex_projection(y):
    # the sort-based projection onto {x >= 0, sum(x) = 1} (Held, Wolfe & Crowder 1974)
    u = np.sort(y)[::-1]
    css = np.cumsum(u)
    k = np.nonzero(u * np.arange(1, len(y) + 1) > css - 1.0)[0][-1]
    return np.maximum(y - (css[k] - 1.0) / (k + 1), 0.0)


def test_pdas_box_qp_closed_form():
    # diagonal G, bounds only: d = clip(-a / G_ii, lower, upper); multipliers w = G d + a
    rng = np.random.default_rng(0)
    n = 12
    g, a = rng.uniform(0.5, 2.0, n), 3 * rng.normal(size=n)
    lower, upper = -np.ones(n), np.ones(n)
    lower[0], upper[1] = -np.inf, np.inf  # free on one side
    r = pdas(np.diag(g), a, np.zeros((0, n)), np.zeros(0), np.zeros(0, bool), lower, upper, _cold(0, n))
    expected = np.clip(-a / g, lower, upper)
    assert r.solved
    np.testing.assert_allclose(r.d, expected, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(r.w, g * expected + a, atol=1e-14)
    np.testing.assert_array_equal(r.active.at_lower, expected == lower)
    np.testing.assert_array_equal(r.active.at_upper, expected == upper)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pdas_simplex_projection_n200(dtype):
    y = np.random.default_rng(200).normal(size=200)
    n = y.shape[0]
    r = pdas(np.eye(n, dtype=dtype), -y.astype(dtype), np.ones((1, n), dtype), np.ones(1, dtype), np.ones(1, bool),
             np.zeros(n, dtype), np.full(n, np.inf, dtype), _cold(1, n))
    assert r.solved and r.d.dtype == dtype
    expected = _simplex_projection(y)
    np.testing.assert_allclose(r.d, expected, atol=10 * np.finfo(dtype).eps)
    np.testing.assert_array_equal(r.active.at_lower, expected == 0)
    # few iterations: all the bounds that bind enter together
    assert int(r.num_steps) <= 10


def _random_bounded_qp(seed):
    G, a, C, b = _random_qp(seed)
    rng = np.random.default_rng(seed)
    # bounds around a feasible point of the general rows (b's construction: C x_f - slack)
    x_feasible = np.linalg.lstsq(C[:ME], b[:ME], rcond=None)[0]
    lower = np.minimum(x_feasible, 0.0) - rng.uniform(0.1, 0.5, N)
    upper = np.maximum(x_feasible, 0.0) + rng.uniform(0.1, 0.5, N)
    return G, 3 * a, C[:ME], b[:ME], lower, upper


def _enumerated_minimum(G, a, C, b, lower, upper):
    """The minimiser of a small convex QP with equalities `C d = b` and bounds, by
    enumerating every face (each coordinate at its lower bound, its upper bound, or
    free): the minimiser is the best of the faces' equality-constrained minimisers
    that satisfy the bounds."""
    import itertools

    n, me = G.shape[0], C.shape[0]
    best, best_q = None, np.inf
    for pattern in itertools.product((0, 1, 2), repeat=n):
        fixed = np.array([p != 2 for p in pattern])
        value = np.where(np.array(pattern) == 0, lower, upper)
        E = np.eye(n)[fixed]
        K = np.block([[G, -C.T, -E.T], [C, np.zeros((me, me + E.shape[0]))],
                      [E, np.zeros((E.shape[0], me + E.shape[0]))]])
        rhs = np.concatenate([-a, b, value[fixed]])
        try:
            sol = np.linalg.solve(K, rhs)
        except np.linalg.LinAlgError:
            continue
        # a singular K need not raise (LAPACK's pivots round to tiny, not zero): keep
        # only faces whose system was really solved
        if not np.allclose(K @ sol, rhs, rtol=0, atol=1e-9):
            continue
        d = sol[:n]
        if np.all(d >= lower - 1e-12) and np.all(d <= upper + 1e-12):
            q = 0.5 * d @ G @ d + a @ d
            if q < best_q:
                best, best_q = d, q
    return best


@pytest.mark.parametrize("seed", range(6))
def test_pdas_bounds_and_equalities_exact(seed):
    G, a, C, b, lower, upper = _random_bounded_qp(seed)
    r = pdas(G, a, C, b, np.ones(ME, bool), lower, upper, _cold(ME, N))
    assert r.solved
    np.testing.assert_allclose(r.d, _enumerated_minimum(G, a, C, b, lower, upper), atol=1e-12)
    d, lam, w = (np.asarray(v) for v in (r.d, r.lam, r.w))
    # the KKT certificate: stationarity with the bound multipliers, signs, complementarity
    np.testing.assert_allclose(G @ d + a - C.T @ lam - w, 0.0, atol=1e-12)
    assert np.all(w[np.asarray(r.active.at_lower)] >= 0) and np.all(w[np.asarray(r.active.at_upper)] <= 0)
    free = ~np.asarray(r.active.at_lower | r.active.at_upper)
    assert np.all(w[free] == 0) and np.all((d >= lower - 1e-12) & (d <= upper + 1e-12))


def test_pdas_warm_start():
    # from its own final active set the solve takes one iteration and returns the same
    # answer; from a wrong guess (every coordinate at its upper bound, every row active)
    # it still finds it
    G, a, C, b, lower, upper = _random_bounded_qp(2)
    C_in, b_in = _random_qp(2)[2][ME:], _random_qp(2)[3][ME:] - 1.0
    C_all, b_all = np.concatenate([C, C_in]), np.concatenate([b, b_in])
    is_eq = np.arange(C_all.shape[0]) < ME
    cold = pdas(G, a, C_all, b_all, is_eq, lower, upper, _cold(C_all.shape[0], N))
    assert cold.solved
    warm = pdas(G, a, C_all, b_all, is_eq, lower, upper, cold.active)
    assert warm.solved and int(warm.num_steps) == 1
    np.testing.assert_allclose(warm.d, cold.d, rtol=1e-12, atol=1e-14)
    wrong = ActiveSet(rows=np.ones(C_all.shape[0], bool), at_lower=np.zeros(N, bool), at_upper=np.ones(N, bool))
    again = pdas(G, a, C_all, b_all, is_eq, lower, upper, wrong)
    assert again.solved
    np.testing.assert_allclose(again.d, cold.d, rtol=1e-10, atol=1e-12)
    # and the dual active-set method (bounds as rows) agrees
    eye = np.eye(N)
    ref = solve(G, a, np.concatenate([C_all, eye, -eye]), np.concatenate([b_all, lower, -upper]),
                np.concatenate([is_eq, np.zeros(2 * N, bool)]))
    np.testing.assert_allclose(cold.d, ref.d, rtol=1e-10, atol=1e-12)


def test_pdas_pinned_coordinate():
    # lower == upper fixes a coordinate; its multiplier takes either sign
    G, a = np.eye(3), np.array([-1.0, 2.0, 0.5])
    lower, upper = np.array([0.3, 0.3, -1.0]), np.array([0.3, 1.0, 1.0])
    r = pdas(G, a, np.zeros((0, 3)), np.zeros(0), np.zeros(0, bool), lower, upper, _cold(0, 3))
    assert r.solved
    np.testing.assert_allclose(r.d, [0.3, 0.3, -0.5])
    np.testing.assert_allclose(r.w, [0.3 - 1.0, 0.3 + 2.0, 0.0])


# --------------------------------------------------------------------------- #
# SQP's relaxed QP on constraint rows of very different scales
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("smallest, big", [(1e-6, 1e3), (1e-7, 5e3)])
def test_relaxed_qp_badly_scaled_rows(smallest, big):
    # HS106's trouble in miniature: rows of size 2.5e-3 next to one of size `big` that
    # meets B's smallest eigenvalue, all active at the solution. Unscaled, the active
    # set's Schur complement had diagonal entries 1e12 and 1e-5, and its relative
    # ridge swamped the small rows: the QP's step missed the solution by 0.70 and 0.83
    # (max-norm), reported solved. Equilibrated rows give the exact solution, built
    # here from its KKT system.
    from jaxmin.solvers._sqp_point import _Point
    from jaxmin.solvers._sqp_subproblem import relaxed_qp

    B = np.diag([smallest, 1.0, 1.0, 0.2])
    J_in = np.array([[0.0, 2.5e-3, 2.5e-3, 0.0], [0.0, 0.0, 2.5e-3, -2.5e-3], [big, 0.0, 1.0, 833.0]])
    p_star, lam_star = np.array([-1.0, -1.0, 0.5, 0.6]), np.array([400.0, 400.0, 1e-2])
    g = -B @ p_star + J_in.T @ lam_star  # stationarity at (p_star, lam_star)
    c_in = -J_in @ p_star  # every row active at p_star, and satisfied at p = 0
    assert np.all(c_in >= 0)
    pt = _Point(f=jnp.zeros(()), g=jnp.asarray(g), c_eq=jnp.zeros(0), J_eq=jnp.zeros((0, 4)),
                c_in=jnp.asarray(c_in), J_in=jnp.asarray(J_in))
    inf = jnp.full(4, jnp.inf)
    qp = relaxed_qp(pt, jnp.asarray(B), jnp.zeros(4), -inf, inf, jnp.asarray(1.0), 0.0, None)
    assert bool(qp.ok)
    np.testing.assert_allclose(qp.p, p_star, rtol=1e-8)
    np.testing.assert_allclose(qp.lam_in, lam_star, rtol=1e-6)
    assert abs(float(qp.delta)) <= 1e-12
