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
