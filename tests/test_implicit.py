"""Derivatives of solutions by the implicit function theorem, against closed forms
and central finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmin as jm

RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.normal(size=(30, 5)))
Y = jnp.asarray(RNG.normal(size=30))
SOLVERS = [jm.LBFGS(gtol=1e-10), jm.NewtonCG(gtol=1e-10)]


def _ridge(w, lam, X, y):
    return 0.5 * jnp.sum((X @ w - y) ** 2) + 0.5 * lam * jnp.dot(w, w)


def _ridge_closed(lam, X=X, y=Y):
    return jnp.linalg.solve(X.T @ X + lam * jnp.eye(X.shape[1]), X.T @ y)


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: type(s).__name__)
def test_ridge_jacobians_match_the_closed_form(solver):
    x_of = lambda lam, y: jm.minimize(_ridge, jnp.zeros(5), solver, args=(lam, X, y)).x
    closed = lambda lam, y: _ridge_closed(lam, y=y)
    for jac in (jax.jacfwd, jax.jacrev):
        # both arguments in one transformed solve (one compilation per mode)
        d_lam, d_y = jac(x_of, argnums=(0, 1))(2.0, Y)
        ref_lam, ref_y = jac(closed, argnums=(0, 1))(2.0, Y)
        np.testing.assert_allclose(d_lam, ref_lam, rtol=1e-6, atol=1e-10)
        np.testing.assert_allclose(d_y, ref_y, rtol=1e-6, atol=1e-10)


def test_fun_obeys_the_envelope_theorem():
    fun_of = lambda lam: jm.minimize(_ridge, jnp.zeros(5), jm.LBFGS(gtol=1e-10), args=(lam, X, Y)).fun
    w = _ridge_closed(2.0)
    np.testing.assert_allclose(jax.grad(fun_of)(2.0), 0.5 * jnp.dot(w, w), rtol=1e-8)


def test_closed_over_hyperparameters_are_differentiable():
    # per-feature penalties captured by closure, not passed in args
    def solution(theta):
        fn = lambda w: jnp.sum((X @ w - Y) ** 2) + jnp.sum(theta * w**2)
        return jm.minimize(fn, jnp.zeros(5), jm.LBFGS(gtol=1e-10)).x

    closed = lambda theta: jnp.linalg.solve(X.T @ X + jnp.diag(theta), X.T @ Y)
    theta = jnp.linspace(0.5, 2.0, 5)
    np.testing.assert_allclose(jax.jacrev(solution)(theta), jax.jacrev(closed)(theta), rtol=1e-6, atol=1e-10)


def test_derivative_with_respect_to_x0_is_zero():
    g = jax.grad(lambda x0: jm.minimize(_ridge, x0, jm.LBFGS(gtol=1e-10), args=(2.0, X, Y)).x.sum())(jnp.ones(5))
    np.testing.assert_array_equal(g, jnp.zeros(5))


def test_vmap_of_grad_and_jit():
    outer = lambda lam: jnp.sum(jm.minimize(_ridge, jnp.zeros(5), jm.LBFGS(gtol=1e-10), args=(lam, X, Y)).x ** 2)
    lams = jnp.array([0.5, 1.0, 4.0])
    expected = jax.vmap(jax.grad(lambda l: jnp.sum(_ridge_closed(l) ** 2)))(lams)
    np.testing.assert_allclose(jax.vmap(jax.grad(outer))(lams), expected, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(jax.vmap(jax.grad(outer)))(lams), expected, rtol=1e-6)


def test_pytree_args_and_parameters():
    def fn(params, hyper):
        pred = X @ params["w"] + params["b"]
        return 0.5 * jnp.sum((pred - Y) ** 2) + 0.5 * hyper["lam"] * jnp.sum(params["w"] ** 2)

    def outer(lam):
        sol = jm.minimize(fn, {"w": jnp.zeros(5), "b": jnp.array(0.0)}, jm.LBFGS(gtol=1e-10), args=({"lam": lam},))
        return jnp.sum(sol.x["w"]) + sol.x["b"]

    Xa = jnp.concatenate([X, jnp.ones((30, 1))], axis=1)
    P = jnp.diag(jnp.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.0]))
    closed = lambda lam: jnp.sum(jnp.linalg.solve(Xa.T @ Xa + lam * P, Xa.T @ Y))
    np.testing.assert_allclose(jax.grad(outer)(1.5), jax.grad(closed)(1.5), rtol=1e-6)


def _logistic(w, log_lam, X, y):
    z = X @ w
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z) + 0.5 * jnp.sum(jnp.exp(log_lam) * w**2)


def test_logistic_hypergradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    Xt, Xv = jnp.asarray(rng.normal(size=(200, 6))), jnp.asarray(rng.normal(size=(100, 6)))
    w_true = jnp.asarray(rng.normal(size=6))
    yt = (jnp.asarray(rng.uniform(size=200)) < jax.nn.sigmoid(Xt @ w_true)).astype(jnp.float64)
    yv = (jnp.asarray(rng.uniform(size=100)) < jax.nn.sigmoid(Xv @ w_true)).astype(jnp.float64)

    def outer(log_lam, gtol=1e-10):
        w = jm.minimize(_logistic, jnp.zeros(6), jm.LBFGS(gtol=gtol), args=(log_lam, Xt, yt)).x
        z = Xv @ w
        return jnp.mean(jnp.logaddexp(0.0, z) - yv * z)

    log_lam = jnp.linspace(-3.0, 0.0, 6)
    grad = jax.grad(outer)(log_lam)
    # independent truth 1: the implicit-function formula with dense Hessians
    w = jm.minimize(_logistic, jnp.zeros(6), jm.LBFGS(gtol=1e-12), args=(log_lam, Xt, yt)).x
    H = jax.hessian(_logistic)(w, log_lam, Xt, yt)
    cross = jax.jacobian(jax.grad(_logistic), argnums=1)(w, log_lam, Xt, yt)
    val = lambda w: jnp.mean(jnp.logaddexp(0.0, Xv @ w) - yv * (Xv @ w))
    np.testing.assert_allclose(grad, -jax.grad(val)(w) @ jnp.linalg.solve(H, cross), rtol=1e-6, atol=1e-12)
    # independent truth 2: central differences (the inner solve resolves f to ~1e-10,
    # so a step of 1e-3 keeps the difference quotient's noise near 1e-7), by the
    # library's derivative certificate: jvp and grad against them along 3 directions
    report = jm.testing.check_derivatives(lambda t: outer(t, 1e-12), log_lam, step=1e-3, rtol=1e-4)
    assert report, report.why


def test_second_derivatives():
    # d^2/dlam^2 of |x*(lam)|^2 against the closed form
    outer = lambda lam: jnp.sum(jm.minimize(_ridge, jnp.zeros(5), jm.LBFGS(gtol=1e-10), args=(lam, X, Y)).x ** 2)
    closed = lambda lam: jnp.sum(_ridge_closed(lam) ** 2)
    np.testing.assert_allclose(jax.hessian(outer)(1.5), jax.hessian(closed)(1.5), rtol=1e-5)


@pytest.mark.parametrize("linear", [jm.linear.CG(rtol=1e-12), jm.linear.Lineax(__import__("lineax").LU())],
                         ids=["CG", "LU"])
def test_implicit_solver_is_swappable(linear):
    x_of = lambda lam: jm.minimize(_ridge, jnp.zeros(5), jm.LBFGS(gtol=1e-10), args=(lam, X, Y),
                                   implicit_solver=linear).x
    np.testing.assert_allclose(jax.jacfwd(x_of)(2.0), jax.jacfwd(lambda l: _ridge_closed(l))(2.0), rtol=1e-6)


def test_float32():
    X32, Y32 = X.astype(jnp.float32), Y.astype(jnp.float32)
    x_of = lambda lam: jm.minimize(_ridge, jnp.zeros(5, jnp.float32), jm.LBFGS(gtol=1e-4), args=(lam, X32, Y32)).x
    J = jax.jacfwd(x_of)(jnp.float32(2.0))
    assert J.dtype == jnp.float32
    np.testing.assert_allclose(J, jax.jacfwd(lambda l: _ridge_closed(l))(2.0), rtol=2e-3, atol=1e-4)


def test_bad_implicit_solver():
    with pytest.raises(TypeError, match="implicit_solver"):
        jm.minimize(_ridge, jnp.zeros(5), args=(1.0, X, Y), implicit_solver="cg")


# --------------------------------------- CG preconditioned by the solver's quasi-Newton matrix


def _ridge_derivatives(solver, implicit_solver):
    """One compiled function per case, batched over lam: the solution undifferentiated
    (with its final reason and how many quasi-Newton pairs its memory holds), the primal
    and tangent of its jvp along lam, and the grad of |x*|^2 (the transpose of that jvp:
    reverse mode's solve), for the ridge problem in the input's dtype."""

    def solve(lam, X, y):
        return jm.minimize(_ridge, jnp.zeros(5, X.dtype), solver, args=(lam, X, y),
                           implicit_solver=implicit_solver)

    def one(lam, X, y):
        x, jvp = jax.linearize(lambda lam: solve(lam, X, y).x, lam)
        (grad,) = jax.linear_transpose(jvp, lam)(2 * x)
        sol = solve(jax.lax.stop_gradient(lam), X, y)
        pairs = sol.state.k if isinstance(solver, jm.LBFGS) else sol.state.updates
        return sol.x, sol.reason, pairs, x, jvp(jnp.ones_like(lam)), grad

    return jax.jit(jax.vmap(one, in_axes=(0, None, None)))


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("solver", [jm.LBFGS, jm.BFGS], ids=["LBFGS", "BFGS"])
def test_quasi_newton_preconditioner_keeps_derivatives(solver, dtype):
    # jvp and grad under vmap against the closed form, as tight as the plain rule's
    # (`test_ridge_jacobians_match_the_closed_form`, `test_float32`); the forward
    # solution is bitwise that of an undifferentiated solve
    f64 = dtype == jnp.float64
    # gtol above the attainable precision: a solve that ends there (Reason.PRECISION)
    # after a failed step has reset its memory, and the preconditioner is the identity
    solver = solver(gtol=1e-7 if f64 else 1e-2)
    implicit = jm.linear.CG(rtol=1e-10 if f64 else 1e-5, preconditioner="solver")
    lams = jnp.array([1.5, 4.0], dtype)
    x_plain, reason, pairs, x, dx, grads = _ridge_derivatives(solver, implicit)(lams, X.astype(dtype), Y.astype(dtype))
    assert jnp.all(reason == jm.Reason.GTOL) and jnp.all(pairs > 0), (reason, pairs)
    assert dx.dtype == grads.dtype == dtype
    np.testing.assert_array_equal(x, x_plain)
    closed_dx = jax.vmap(jax.jacfwd(lambda l: _ridge_closed(l)))(lams.astype(jnp.float64))
    closed_grads = jax.vmap(jax.grad(lambda l: jnp.sum(_ridge_closed(l) ** 2)))(lams.astype(jnp.float64))
    close = dict(rtol=1e-6, atol=1e-10) if f64 else dict(rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(dx, closed_dx, **close)
    np.testing.assert_allclose(grads, closed_grads, **close)


def _solved_state(solver, fn, x0, args):
    from jaxmin._loop import run_solver

    _, state, _, status, *_ = jax.jit(lambda args: run_solver(solver, fn, x0, args, 1000))(args)
    return state, status


def test_quasi_newton_preconditioners():
    # an ill-conditioned ridge problem (Hessian eigenvalues 1 .. 1e4)
    n = 20
    q, _ = jnp.linalg.qr(jnp.asarray(np.random.default_rng(2).normal(size=(n, n))))
    A = (q * jnp.logspace(0.0, 4.0, n)[None, :]) @ q.T
    fn = lambda w, b: 0.5 * jnp.dot(w, A @ w) - jnp.dot(b, w)
    args, rhs = (jnp.ones(n),), jnp.cos(jnp.arange(n, dtype=jnp.float64))
    cg = jax.jit(lambda pre, b: jm.linear.CG(rtol=1e-10, preconditioner=pre).solve(lambda v: A @ v, b),
                 static_argnums=0)
    # BFGS's matrix: far fewer CG steps, the same solution
    state, status = _solved_state(jm.BFGS(gtol=1e-6), fn, jnp.zeros(n), args)
    assert status == jm.Status.CONVERGED
    plain, pre = cg(None, rhs), cg(jm.BFGS().implicit_preconditioner(state), rhs)
    assert plain.reason == pre.reason == jm.linear.Reason.CONVERGED
    assert 2 * pre.num_steps <= plain.num_steps, (pre.num_steps, plain.num_steps)
    np.testing.assert_allclose(pre.x, jnp.linalg.solve(A, rhs), rtol=1e-8)
    # L-BFGS's pairs: an inverse Hessian obeying the secant equation H y = s of the
    # newest pair (N&W eq. 6.17), symmetric positive definite
    solver = jm.LBFGS(gtol=1e-3)
    state, _ = _solved_state(solver, fn, jnp.zeros(n), args)
    assert state.k > 0
    newest = (state.k - 1) % solver.history_size
    M = jax.vmap(solver.implicit_preconditioner(state))(jnp.eye(n)).T
    np.testing.assert_allclose(M @ state.y_hist[newest], state.s_hist[newest], rtol=1e-8)
    np.testing.assert_allclose(M, M.T, atol=1e-12 * float(jnp.max(jnp.abs(M))))
    assert jnp.min(jnp.linalg.eigvalsh(M)) > 0
    # solvers that hold no such matrix offer none
    assert jm.NewtonCG().implicit_preconditioner(state) is None


def test_preconditioned_tangent_failure_is_reported():
    # a tangent solve that cannot converge (rtol = atol = 0, one step) is NaN, or an
    # error with throw=True, as without a preconditioner (test_conveniences.py)
    linear = jm.linear.CG(rtol=0.0, max_steps=1, preconditioner="solver")
    x_of = lambda lam, throw: jm.minimize(_ridge, jnp.zeros(5), jm.BFGS(gtol=1e-10), args=(lam, X, Y),
                                          implicit_solver=linear, throw=throw).x
    assert jnp.all(jnp.isnan(jax.jvp(lambda l: x_of(l, False), (2.0,), (1.0,))[1]))
    with pytest.raises(Exception, match="linear solve did not converge"):
        jax.block_until_ready(jax.grad(lambda l: jnp.sum(x_of(l, True)))(2.0))
