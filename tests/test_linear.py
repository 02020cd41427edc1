"""jaxmin.linear: CG, TruncatedCG and Lineax against dense solves, their exits, and
derivatives through them (reverse and forward mode) against `jnp.linalg.solve`."""

import equinox as eqx
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
from hypothesis import given, settings

from jaxmin.linear import CG, AbstractLinearSolver, Lineax, LinearResult, Reason, TruncatedCG

from helpers import tol

N = 6
CONVERGED, MAX_STEPS, NEGATIVE_CURVATURE, FAILED = (
    Reason.CONVERGED, Reason.MAX_STEPS, Reason.NEGATIVE_CURVATURE, Reason.FAILED
)
SPD_SOLVERS = [
    CG(rtol=1e-12),
    TruncatedCG(rtol=1e-12),
    Lineax(lx.LU()),
    Lineax(lx.Cholesky(), lx.positive_semidefinite_tag),
    Lineax(lx.CG(rtol=1e-12, atol=1e-12), lx.positive_semidefinite_tag),
]
INDEFINITE_SOLVERS = [Lineax(lx.LU()), Lineax(lx.GMRES(rtol=1e-12, atol=1e-12, restart=N))]
settings.register_profile("linear", max_examples=25, deadline=None, derandomize=True)


@eqx.filter_jit
def _solve(solver: AbstractLinearSolver, A, b) -> LinearResult:
    # one compilation per solver (its Python floats are static), shared by all tests
    return solver.solve(lambda v: A @ v, b)


def _symmetric(m, lam):
    q, _ = jnp.linalg.qr(jnp.asarray(m))
    lam = jnp.asarray(lam)
    return (q * lam[None, :]) @ q.T


def _assert_solves(x, A, b, rtol):
    x_star = np.linalg.solve(np.asarray(A), np.asarray(b))
    assert np.linalg.norm(np.asarray(x) - x_star) <= rtol * np.linalg.norm(x_star)


_matrix = hnp.arrays(np.float64, (N, N), elements=st.floats(-1, 1))
_rhs = hnp.arrays(np.float64, (N,), elements=st.floats(-10, 10)).filter(
    lambda b: np.linalg.norm(b) > 1e-3
)
_positive = hnp.arrays(np.float64, (N,), elements=st.floats(0.1, 10))
_signs = hnp.arrays(np.float64, (N,), elements=st.sampled_from([-1.0, 1.0]))


# ---------------------------------------------------------------- dense references


@settings(settings.get_profile("linear"))
@given(m=_matrix, lam=_positive, b=_rhs)
def test_spd_matches_dense_solve(m, lam, b):
    A = _symmetric(m, lam)  # condition number at most 100
    for solver in SPD_SOLVERS:
        res = _solve(solver, A, jnp.asarray(b))
        assert res.reason == CONVERGED, solver
        _assert_solves(res.x, A, b, 1e-7)
        assert res.x.dtype == jnp.float64


@settings(settings.get_profile("linear"))
@given(m=_matrix, lam=_positive, signs=_signs, b=_rhs)
def test_indefinite_matches_dense_solve(m, lam, signs, b):
    A = _symmetric(m, signs * lam)
    for solver in INDEFINITE_SOLVERS:
        res = _solve(solver, A, jnp.asarray(b))
        assert res.reason == CONVERGED
        _assert_solves(res.x, A, b, 1e-7)


@settings(settings.get_profile("linear"))
@given(m=_matrix, lam=_positive, signs=_signs, b=_rhs)
def test_truncated_cg_always_descends(m, lam, signs, b):
    # `x . b > 0`: a descent direction for g = -b whatever H's inertia or the exit
    A = _symmetric(m, signs * lam)
    for solver in [TruncatedCG(), TruncatedCG(rtol=1e-12), TruncatedCG(max_steps=2)]:
        res = _solve(solver, A, jnp.asarray(b))
        assert jnp.dot(res.x, b) > 0
        assert res.reason != FAILED
        assert 1 <= res.num_steps <= (2 if solver.max_steps == 2 else 10 * N)


# ----------------------------------------------------------------- TruncatedCG exits


def test_truncated_cg_negative_curvature_at_first_step_returns_b():
    A = jnp.diag(jnp.array([-1.0, 2.0, 3.0]))
    b = jnp.array([1.0, 0.1, 0.1])  # b^T A b < 0
    res = _solve(TruncatedCG(), A, b)
    assert res.reason == NEGATIVE_CURVATURE
    assert res.num_steps == 1
    assert np.array_equal(res.x, b)
    # zero curvature is caught too: H = 0 gives steepest descent, not a division by 0
    res = _solve(TruncatedCG(), jnp.zeros((3, 3)), b)
    assert res.reason == NEGATIVE_CURVATURE
    assert np.array_equal(res.x, b)


def test_truncated_cg_negative_curvature_later_returns_iterate():
    A = jnp.diag(jnp.array([1.0, 2.0, -1.0]))
    b = jnp.array([1.0, 1.0, 0.1])  # positive curvature along b, negative in its Krylov space
    res = _solve(TruncatedCG(rtol=1e-12), A, b)
    assert res.reason == NEGATIVE_CURVATURE
    assert res.num_steps >= 2
    assert not np.array_equal(res.x, b)
    assert jnp.all(jnp.isfinite(res.x))
    assert jnp.dot(res.x, b) > 0


def test_eisenstat_walker_forcing():
    # eta = min(0.5, sqrt|b|): a loose solve far from a solution (large gradient),
    # a tight one near it (tiny gradient), on the same system
    A = jnp.diag(jnp.linspace(1.0, 100.0, 20))
    direction = jnp.cos(jnp.arange(20.0))
    large = _solve(TruncatedCG(), A, 100.0 * direction)
    tiny = _solve(TruncatedCG(), A, 1e-8 * direction)
    assert large.reason == CONVERGED and tiny.reason == CONVERGED
    assert large.num_steps < tiny.num_steps
    for res, b in [(large, 100.0 * direction), (tiny, 1e-8 * direction)]:
        eta = min(0.5, float(jnp.sqrt(jnp.linalg.norm(b))))
        assert jnp.linalg.norm(b - A @ res.x) <= eta * jnp.linalg.norm(b)


# ---------------------------------------------------------------------- CG details


def _jacobi_system(n=30):
    # diagonally dominant, condition number ~1e6 from the diagonal alone
    d = jnp.logspace(0.0, 6.0, n)
    off = 0.1 * jnp.ones((n, n))
    return jnp.diag(d) + off - jnp.diag(jnp.diag(off)), jnp.ones(n), d


def test_jacobi_preconditioner_takes_fewer_steps():
    A, b, d = _jacobi_system()
    plain = _solve(CG(rtol=1e-10, max_steps=1000), A, b)
    jacobi = _solve(CG(rtol=1e-10, max_steps=1000, preconditioner=lambda v: v / d), A, b)
    assert plain.reason == CONVERGED and jacobi.reason == CONVERGED
    assert jacobi.num_steps < plain.num_steps
    _assert_solves(jacobi.x, A, b, 1e-6)


def test_atol_and_zero_rhs():
    A = jnp.diag(jnp.arange(1.0, 7.0))
    res = _solve(CG(), A, jnp.zeros(N))
    assert res.reason == CONVERGED and res.num_steps == 0
    assert np.array_equal(res.x, jnp.zeros(N))
    # atol larger than |b|: nothing to do
    res = _solve(CG(rtol=0.0, atol=10.0), A, jnp.ones(N))
    assert res.reason == CONVERGED and res.num_steps == 0


# ------------------------------------------------------------------------- reasons


def test_max_steps():
    A = jnp.diag(jnp.arange(1.0, 7.0))
    b = jnp.ones(N)
    for solver in [
        CG(max_steps=2),
        TruncatedCG(rtol=1e-12, max_steps=2),
        Lineax(lx.GMRES(rtol=1e-12, atol=1e-12, max_steps=2, restart=1)),
        Lineax(lx.CG(rtol=1e-12, atol=1e-12, max_steps=2), lx.positive_semidefinite_tag),
    ]:
        res = _solve(solver, A, b)
        assert res.reason == MAX_STEPS
        assert res.num_steps == 2
        assert jnp.all(jnp.isfinite(res.x))
        assert jnp.dot(res.x, b) > 0


def test_failed_on_nan():
    A = jnp.diag(jnp.arange(1.0, 7.0))
    b = jnp.ones(N)
    nan_b = b.at[0].set(jnp.nan)
    nan_A = A.at[0, 0].set(jnp.nan)
    for solver in [CG(), TruncatedCG(), Lineax(lx.LU())]:
        assert _solve(solver, A, nan_b).reason == FAILED
        assert _solve(solver, nan_A, b).reason == FAILED
    # CG propagates the failure as NaN; TruncatedCG falls back to b
    assert jnp.all(jnp.isnan(_solve(CG(), nan_A, b).x))
    assert np.array_equal(_solve(TruncatedCG(), nan_A, b).x, b)
    assert _solve(TruncatedCG(), nan_A, b).num_steps == 1


def test_truncated_cg_nan_later_returns_last_finite_iterate():
    A = jnp.diag(jnp.arange(1.0, 7.0))
    b = jnp.ones(N).at[2].set(0.0)
    # the matvec is NaN unless v[0] == v[1]: finite along the first direction b, NaN
    # along the second, whose first two entries differ because A's diagonal does
    mv = lambda v: jnp.where(jnp.abs(v[0] - v[1]) > 0, jnp.nan, 1.0) * (A @ v)
    res = jax.jit(lambda b: TruncatedCG(rtol=1e-12).solve(mv, b))(b)
    assert res.reason == FAILED
    assert res.num_steps == 2
    alpha = jnp.dot(b, b) / jnp.dot(b, A @ b)
    assert np.allclose(res.x, alpha * b)


def test_cg_breakdown_on_indefinite():
    A = jnp.diag(jnp.array([-1.0, 2.0, 3.0]))
    res = _solve(CG(), A, jnp.array([1.0, 0.1, 0.1]))
    assert res.reason == FAILED


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="max_steps"):
        CG(max_steps=0)
    with pytest.raises(ValueError, match="max_steps"):
        TruncatedCG(max_steps=0)
    with pytest.raises(ValueError, match="rtol"):
        CG(rtol=-1.0)
    with pytest.raises(ValueError, match="1-D"):
        CG().solve(lambda v: v, jnp.ones((2, 2)))


# ------------------------------------------------------------------- derivatives


def _parametrised(P, c):
    A = P @ P.T + 4.0 * jnp.eye(4)  # SPD for every P
    b = jnp.sin(c)
    return A, b


def _loss(solve, P, c):
    A, b = _parametrised(P, c)
    x = solve(A, b)
    return jnp.sum(jnp.cos(x) * jnp.arange(1.0, 5.0))


DIFF_SOLVERS = [
    CG(rtol=1e-13),
    Lineax(lx.LU()),
    Lineax(lx.Cholesky(), lx.positive_semidefinite_tag),
    Lineax(lx.CG(rtol=1e-13, atol=1e-13), lx.positive_semidefinite_tag),
]


@pytest.mark.parametrize("solver", DIFF_SOLVERS, ids=lambda s: repr(s)[:20])
def test_derivatives_match_dense_solve(solver, key):
    P = jax.random.normal(key, (4, 4))
    c = jnp.linspace(-1.0, 2.0, 4)
    ours = lambda P, c: _loss(lambda A, b: solver.solve(lambda v: A @ v, b).x, P, c)
    dense = lambda P, c: _loss(jnp.linalg.solve, P, c)
    for transform in [jax.grad, jax.jacfwd]:
        got = jax.jit(transform(ours, argnums=(0, 1)))(P, c)
        want = transform(dense, argnums=(0, 1))(P, c)
        for g, w in zip(got, want):
            assert np.allclose(g, w, rtol=1e-8, atol=1e-10)


def test_cg_jvp_and_vjp_agree():
    # <grad, v> == jvp(v): the transpose rule is the adjoint of the tangent rule
    P = jnp.eye(4) + 0.1 * jnp.arange(16.0).reshape(4, 4)
    c = jnp.linspace(-1.0, 2.0, 4)
    ours = lambda P: _loss(lambda A, b: CG(rtol=1e-13).solve(lambda v: A @ v, b).x, P, c)
    v = jnp.ones((4, 4)) / 4
    _, tangent = jax.jvp(ours, (P,), (v,))
    assert np.allclose(jnp.sum(jax.grad(ours)(P) * v), tangent, rtol=1e-9)


def test_cg_inside_custom_jvp_rule():
    # the use in implicit differentiation: a tangent rule that solves with CG must
    # survive `jax.grad` (a plain while_loop there cannot be transposed)
    A = _symmetric(np.cos(np.arange(N * N).reshape(N, N)), np.linspace(1.0, 5.0, N))

    @jax.custom_jvp
    def argmin(theta):  # argmin of 0.5 x^T A x - theta . x
        return jnp.linalg.solve(A, theta)

    @argmin.defjvp
    def _jvp(primals, tangents):
        (theta,), (dtheta,) = primals, tangents
        return argmin(theta), CG(rtol=1e-13).solve(lambda v: A @ v, dtheta).x

    theta = jnp.linspace(-1.0, 1.0, N)
    loss = lambda f: lambda t: jnp.sum(jnp.sin(f(t)))
    want = jax.grad(loss(lambda t: jnp.linalg.solve(A, t)))(theta)
    assert np.allclose(jax.jit(jax.grad(loss(argmin)))(theta), want, rtol=1e-9)
    assert np.allclose(jax.jacfwd(loss(argmin))(theta), want, rtol=1e-9)


# ------------------------------------------------- transformations and dtypes


def test_vmap_over_b():
    A = _symmetric(np.cos(np.arange(N * N).reshape(N, N)), np.linspace(1.0, 5.0, N))
    B = jnp.cos(jnp.arange(3 * N, dtype=jnp.float64).reshape(3, N)) + 2.0
    for solver in [CG(rtol=1e-12), TruncatedCG(), Lineax(lx.LU())]:
        batched = eqx.filter_jit(jax.vmap(lambda b: solver.solve(lambda v: A @ v, b)))(B)
        for i in range(3):
            single = _solve(solver, A, B[i])
            assert np.allclose(batched.x[i], single.x, rtol=1e-12, atol=1e-14)
            assert batched.num_steps[i] == single.num_steps
            assert batched.reason[i] == single.reason


def test_float32():
    A = _symmetric(np.cos(np.arange(N * N).reshape(N, N)), np.linspace(1.0, 5.0, N))
    b = jnp.linspace(1.0, 2.0, N)
    A32, b32 = A.astype(jnp.float32), b.astype(jnp.float32)
    for solver in [
        CG(rtol=1e-5),
        TruncatedCG(rtol=1e-5),
        Lineax(lx.LU()),
        Lineax(lx.GMRES(rtol=1e-5, atol=1e-5)),
    ]:
        res = _solve(solver, A32, b32)
        assert res.x.dtype == jnp.float32
        assert res.reason == CONVERGED
        _assert_solves(res.x, A, b, tol(jnp.float32))
    # negative-curvature tolerance follows the dtype: found in float32 too
    res = _solve(TruncatedCG(), jnp.diag(jnp.array([-1.0, 2.0], jnp.float32)),
                 jnp.array([1.0, 0.1], jnp.float32))
    assert res.reason == NEGATIVE_CURVATURE and res.x.dtype == jnp.float32


def test_traced_rtol_one_compilation():
    A, b, _ = _jacobi_system(12)
    traces = []

    @jax.jit
    def solve(rtol, A, b):
        traces.append(None)
        return (CG(rtol=rtol, max_steps=500).solve(lambda v: A @ v, b),
                TruncatedCG(rtol=rtol, max_steps=500).solve(lambda v: A @ v, b))

    loose_cg, loose_tcg = solve(jnp.array(1e-2), A, b)
    tight_cg, tight_tcg = solve(jnp.array(1e-10), A, b)
    assert len(traces) == 1
    for loose, tight in [(loose_cg, tight_cg), (loose_tcg, tight_tcg)]:
        assert loose.reason == CONVERGED and tight.reason == CONVERGED
        assert loose.num_steps < tight.num_steps
    # a float64 rtol drives a float32 solve, and vmap over rtol works
    batched = jax.vmap(solve, in_axes=(0, None, None))(
        jnp.array([1e-2, 1e-4]), A.astype(jnp.float32), b.astype(jnp.float32)
    )
    assert batched[0].x.dtype == jnp.float32
    assert batched[0].num_steps[0] < batched[0].num_steps[1]


def test_solver_preconditioner_outside_minimize_is_the_identity():
    # `preconditioner="solver"` names the minimiser's own; a direct solve has none
    A, b, _ = _jacobi_system()
    plain, named = _solve(CG(rtol=1e-10, max_steps=1000), A, b), _solve(CG(rtol=1e-10, max_steps=1000, preconditioner="solver"), A, b)
    np.testing.assert_array_equal(named.x, plain.x)
    assert named.num_steps == plain.num_steps
    with pytest.raises(ValueError, match="preconditioner"):
        CG(preconditioner="jacobi")
