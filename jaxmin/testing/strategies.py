"""Hypothesis strategies of minimisation problems with known solutions.

Each strategy draws a `jm.testing.Problem` (`fn`, `x0`, `args`, `bounds`/`eq`/`ineq`,
`x_star`, `f_star`, and where known the active set and multipliers). The solution is
built first and the data around it (a linear term, a prior mean, the right-hand
sides), so it is known exactly, up to the rounding of the derived data to the dtype.

Every parameter takes a value or a strategy: `quadratics(n=3)` fixes the size (so a
compiled solve is reused across examples), `quadratics(n=st.integers(1, 8))` draws
it. `dtype` (`None`: JAX's default float) and `pytree` (`False`: a flat vector;
`True`: a dict `{"head": (k,), "tail": (n - k, 1)}`, see `Problem.as_tree`) likewise.
Sizes are drawn first, from small ranges, and data from bounded `st.floats`, so a
failing example shrinks to a small problem with round numbers (identity rotations,
zero data, the first choice of every option). The objective of each family is one
module-level function taking its data as `args`, so examples of one shape share one
compilation.
"""

try:
    from hypothesis import strategies as st
    from hypothesis.strategies import SearchStrategy
except ImportError as e:  # pragma: no cover - exercised only without hypothesis
    raise ImportError(
        "`jaxmin.testing.strategies` needs Hypothesis: `pip install hypothesis` (or "
        "`pip install jaxmin[test]`). The rest of `jaxmin.testing` works without it."
    ) from e

import jax
import jax.numpy as jnp
import numpy as np

from ._mgh import MGH_PROBLEMS
from ._problem import Problem

__all__ = [
    "quadratics", "ridge_regressions", "logistic_regressions", "strongly_convex", "box_qps",
    "constrained_qps", "least_squares_fits", "mgh_problems", "problems",
    "quadratic", "ridge", "logistic", "least_squares", "exponential_fit", "qp_eq", "qp_ineq",
]


# --- objectives and constraints (module level: one compilation per shape) ----------

def quadratic(x, A, b, *_):
    """`1/2 x.A x - b.x` (the extra arguments are a QP's constraint data)."""
    return 0.5 * jnp.dot(x, A @ x) - jnp.dot(b, x)


def qp_eq(x, A, b, E, e, G, h):
    """`E x - e` (must be 0)."""
    return E @ x - e


def qp_ineq(x, A, b, E, e, G, h):
    """`G x - h` (must be >= 0)."""
    return G @ x - h


def ridge(w, X, y, lam):
    """`1/2 |X w - y|^2 + lam/2 |w|^2`."""
    return 0.5 * jnp.sum((X @ w - y) ** 2) + 0.5 * lam * jnp.dot(w, w)


def logistic(w, X, y, lam, w0):
    """`sum_i log(1 + exp(-y_i x_i.w)) + lam/2 |w - w0|^2`, labels `y_i = +-1`."""
    return jnp.sum(jax.nn.softplus(-y * (X @ w))) + 0.5 * lam * jnp.sum((w - w0) ** 2)


def least_squares(w, X, y):
    """`1/2 |X w - y|^2`."""
    return 0.5 * jnp.sum((X @ w - y) ** 2)


def exponential_fit(x, t, y):
    """`1/2 sum_i (x_0 exp(-x_1 t_i) - y_i)^2`."""
    return 0.5 * jnp.sum((x[0] * jnp.exp(-x[1] * t) - y) ** 2)


# --- drawing helpers -----------------------------------------------------------------

def _s(value) -> SearchStrategy:
    return value if isinstance(value, SearchStrategy) else st.just(value)


def _dtype(value) -> SearchStrategy:
    if value is None:
        return st.just(None)
    return _s(value).map(jnp.dtype)


def _vector(draw, n: int, lo: float, hi: float, dtype) -> np.ndarray:
    """`n` floats in `[lo, hi]`, rounded to `dtype` (kept as float64)."""
    values = draw(st.lists(st.floats(lo, hi, allow_nan=False), min_size=n, max_size=n))
    return _round(np.asarray(values, np.float64).reshape(n), dtype)


def _round(v, dtype) -> np.ndarray:
    return np.asarray(np.asarray(v, np.dtype(dtype)), np.float64)


def _spd(draw, n: int, cond: float, dtype) -> np.ndarray:
    """`Q diag(lam) Q` with eigenvalues `lam` in `[1, cond]` (both ends present for
    n >= 2) and `Q` a Householder reflection (the identity when its vector is ~0)."""
    lam = cond ** _vector(draw, n, 0.0, 1.0, np.float64)
    if n >= 2:
        lam[0], lam[-1] = 1.0, cond
    v = _vector(draw, n, -1.0, 1.0, np.float64)
    Q = np.eye(n) - 2.0 * np.outer(v, v) / (v @ v) if v @ v > 1e-3 else np.eye(n)
    A = Q @ np.diag(lam) @ Q
    return _round(0.5 * (A + A.T), dtype)


def _where(mask) -> list:
    return np.flatnonzero(mask).tolist()


def _finish(draw, problem: Problem, dtype, pytree) -> Problem:
    problem = problem.astype(dtype)
    return problem.as_tree() if draw(_s(pytree)) else problem


def _resolve(dtype):
    return jnp.dtype(jax.dtypes.canonicalize_dtype(jnp.float64) if dtype is None else dtype)


# --- strategies ----------------------------------------------------------------------

@st.composite
def _quadratics(draw, n, cond, dtype, pytree):
    n, cond, dtype = draw(n), draw(cond), _resolve(draw(dtype))
    A = _spd(draw, n, cond, dtype)
    x_star = _vector(draw, n, -10.0, 10.0, dtype)
    b = _round(A @ x_star, dtype)
    x_star = np.linalg.solve(A, b)  # exact for the rounded data
    p = Problem(
        name=f"quadratic(n={n}, cond={cond:.3g})", fn=quadratic, x0=_vector(draw, n, -10.0, 10.0, dtype),
        args=(A, b), x_star=x_star, f_star=float(-0.5 * b @ x_star),
        source="1/2 x.A x - b.x, A = Q diag(lam) Q; x* = A^-1 b",
    )
    return _finish(draw, p, dtype, pytree)


def quadratics(n=st.integers(1, 4), cond=st.floats(1.0, 100.0), *, dtype=None, pytree=False):
    """Convex quadratics `1/2 x.A x - b.x` of size `n` whose `A` has condition number
    `cond` (eigenvalues from 1 to `cond`, rotated by a Householder reflection);
    `x_star = A^-1 b`."""
    return _quadratics(_s(n), _s(cond), _dtype(dtype), pytree)


@st.composite
def _ridge(draw, n, m, dtype, pytree):
    n, m, dtype = draw(n), draw(m), _resolve(draw(dtype))
    X = _vector(draw, m * n, -1.0, 1.0, dtype).reshape(m, n)
    y = _vector(draw, m, -1.0, 1.0, dtype)
    lam = float(_vector(draw, 1, 0.1, 10.0, dtype)[0])
    w = np.linalg.solve(X.T @ X + lam * np.eye(n), X.T @ y)
    f = 0.5 * np.sum((X @ w - y) ** 2) + 0.5 * lam * w @ w
    p = Problem(
        name=f"ridge(n={n}, m={m})", fn=ridge, x0=np.zeros(n), args=(X, y, np.float64(lam)),
        x_star=w, f_star=float(f), source="w* = (X'X + lam I)^-1 X'y",
    )
    return _finish(draw, p, dtype, pytree)


def ridge_regressions(n=st.integers(1, 4), m=st.integers(1, 6), *, dtype=None, pytree=False):
    """Ridge regression `1/2 |X w - y|^2 + lam/2 |w|^2` (`lam` in [0.1, 10]), strongly
    convex; `x_star` by the normal equations."""
    return _ridge(_s(n), _s(m), _dtype(dtype), pytree)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@st.composite
def _logistic(draw, n, m, dtype, pytree):
    n, m, dtype = draw(n), draw(m), _resolve(draw(dtype))
    X = _vector(draw, m * n, -2.0, 2.0, dtype).reshape(m, n)
    y = np.asarray(draw(st.lists(st.sampled_from([1.0, -1.0]), min_size=m, max_size=m)), np.float64)
    lam = float(_vector(draw, 1, 0.1, 10.0, dtype)[0])
    w_star = _vector(draw, n, -2.0, 2.0, dtype)
    grad_loss = -X.T @ (y * _sigmoid(-y * (X @ w_star)))
    w0 = _round(w_star + grad_loss / lam, dtype)  # grad f(w*) = grad_loss + lam (w* - w0) = 0
    f = np.sum(np.logaddexp(0.0, -y * (X @ w_star))) + 0.5 * lam * np.sum((w_star - w0) ** 2)
    p = Problem(
        name=f"logistic(n={n}, m={m})", fn=logistic, x0=np.zeros(n), args=(X, y, np.float64(lam), w0),
        x_star=w_star, f_star=float(f),
        source="L2-regularised logistic regression towards w0 = w* + grad loss(w*) / lam",
    )
    return _finish(draw, p, dtype, pytree)


def logistic_regressions(n=st.integers(1, 4), m=st.integers(1, 6), *, dtype=None, pytree=False):
    """L2-regularised logistic regression, `sum log(1 + exp(-y_i x_i.w)) + lam/2 |w -
    w0|^2`: `w*` is drawn first and the prior mean `w0` chosen to make it the
    minimiser (strongly convex, so the only one)."""
    return _logistic(_s(n), _s(m), _dtype(dtype), pytree)


def strongly_convex(n=st.integers(1, 4), m=st.integers(1, 6), *, dtype=None, pytree=False):
    """Strongly convex sums: `ridge_regressions` or `logistic_regressions`."""
    return st.one_of(ridge_regressions(n, m, dtype=dtype, pytree=pytree),
                     logistic_regressions(n, m, dtype=dtype, pytree=pytree))


@st.composite
def _box_qps(draw, n, cond, dtype, pytree):
    n, cond, dtype = draw(n), draw(cond), _resolve(draw(dtype))
    A = _spd(draw, n, cond, dtype)
    x_star = _vector(draw, n, -5.0, 5.0, dtype)
    status = np.asarray(draw(st.lists(st.sampled_from([0, 1, 2]), min_size=n, max_size=n)), int)
    size = _vector(draw, n, 0.1, 10.0, dtype)  # |gradient| at active bounds
    g = np.where(status == 1, size, np.where(status == 2, -size, 0.0))
    lower = np.where(status == 1, x_star, x_star - _vector(draw, n, 0.5, 5.0, dtype))
    upper = np.where(status == 2, x_star, x_star + _vector(draw, n, 0.5, 5.0, dtype))
    b = _round(A @ x_star - g, dtype)  # grad f(x*) = A x* - b = g
    x0 = np.clip(_vector(draw, n, -5.0, 5.0, dtype), lower, upper)
    p = Problem(
        name=f"box_qp(n={n}, cond={cond:.3g}, at lower={_where(status == 1)}, at upper={_where(status == 2)})",
        fn=quadratic, x0=x0, args=(A, b), x_star=x_star, f_star=float(0.5 * x_star @ A @ x_star - b @ x_star),
        bounds=(lower, upper), bound_multipliers=g, active_lower=status == 1, active_upper=status == 2,
        source="x*, active set and gradient signs first; then b = A x* - g",
    )
    return _finish(draw, p, dtype, pytree)


def box_qps(n=st.integers(1, 4), cond=st.floats(1.0, 100.0), *, dtype=None, pytree=False):
    """Box-constrained convex QPs with a known active set: each coordinate is free,
    at its lower bound (gradient in [0.1, 10]) or at its upper bound (gradient in
    [-10, -0.1]), strictly complementary; `bound_multipliers` is that gradient."""
    return _box_qps(_s(n), _s(cond), _dtype(dtype), pytree)


@st.composite
def _constrained_qps(draw, n, num_eq, num_ineq, cond, dtype, pytree):
    n, me, mi, cond, dtype = draw(n), draw(num_eq), draw(num_ineq), draw(cond), _resolve(draw(dtype))
    active = np.asarray(draw(st.lists(st.booleans(), min_size=mi, max_size=mi)), bool).reshape(mi)
    active &= np.cumsum(active) <= n - me  # at most n active rows (LICQ)
    # active rows: e_j plus a perturbation small enough to keep them diagonally dominant
    k = me + int(active.sum())
    rows = _round(np.eye(n)[:k] + 0.5 / n * _vector(draw, k * n, -1.0, 1.0, dtype).reshape(k, n), dtype)
    E = rows[:me]
    G = _vector(draw, mi * n, -1.0, 1.0, dtype).reshape(mi, n)
    G[active] = rows[me:]
    lam_eq = _vector(draw, me, -5.0, 5.0, dtype)
    lam_in = np.where(active, _vector(draw, mi, 0.1, 5.0, dtype), 0.0)
    slack = np.where(active, 0.0, _vector(draw, mi, 0.5, 5.0, dtype))
    A = _spd(draw, n, cond, dtype)
    x_star = _vector(draw, n, -3.0, 3.0, dtype)
    b = _round(A @ x_star - E.T @ lam_eq - G.T @ lam_in, dtype)  # grad f = E'lam_eq + G'lam_in
    e, h = _round(E @ x_star, dtype), _round(G @ x_star - slack, dtype)
    p = Problem(
        name=f"constrained_qp(n={n}, eq={me}, ineq={mi}, active={_where(active)})",
        fn=quadratic, x0=_vector(draw, n, -3.0, 3.0, dtype), args=(A, b, E, e, G, h),
        x_star=x_star, f_star=float(0.5 * x_star @ A @ x_star - b @ x_star),
        eq=qp_eq if me else None, ineq=qp_ineq if mi else None,
        multipliers=(lam_eq, lam_in), active_ineq=active,
        source="x*, active set and multipliers first; then b, e, h from the KKT conditions",
    )
    return _finish(draw, p, dtype, pytree)


def constrained_qps(n=st.integers(2, 4), num_eq=st.integers(0, 1), num_ineq=st.integers(1, 2),
                    cond=st.floats(1.0, 10.0), *, dtype=None, pytree=False):
    """Convex QPs with linear equality (`E x = e`) and inequality (`G x >= h`)
    constraints and a known KKT point: `x*`, which inequalities are active and the
    multipliers (equality in [-5, 5], active inequality in [0.1, 5]) are drawn first.
    Active rows are near-unit vectors (LICQ holds), so `x*` is the unique solution."""
    return _constrained_qps(_s(n), _s(num_eq), _s(num_ineq), _s(cond), _dtype(dtype), pytree)


@st.composite
def _fits(draw, n, m, model, dtype, pytree):
    model, dtype = draw(model), _resolve(draw(dtype))
    if model == "exponential":
        m = max(draw(m), 3)
        t = np.linspace(0.0, 3.0, m)
        x_star = np.concatenate([_vector(draw, 1, 0.5, 5.0, dtype), _vector(draw, 1, 0.1, 2.0, dtype)])
        y = _round(x_star[0] * np.exp(-x_star[1] * t), dtype)
        p = Problem(name=f"exponential_fit(m={m})", fn=exponential_fit, x0=np.ones(2),
                    args=(_round(t, dtype), y), x_star=x_star, f_star=0.0,
                    source="y_i = a exp(-k t_i) exactly at (a, k) = x*")
    else:
        n = draw(n)
        m = max(draw(m), n)
        head = np.eye(n) + 0.5 / n * _vector(draw, n * n, -1.0, 1.0, dtype).reshape(n, n)
        X = np.concatenate([_round(head, dtype), _vector(draw, (m - n) * n, -1.0, 1.0, dtype).reshape(m - n, n)])
        x_star = _vector(draw, n, -5.0, 5.0, dtype)
        p = Problem(name=f"linear_fit(n={n}, m={m})", fn=least_squares, x0=np.zeros(n),
                    args=(X, _round(X @ x_star, dtype)), x_star=x_star, f_star=0.0,
                    source="y = X x* exactly; X has full column rank")
    return _finish(draw, p, dtype, pytree)


def least_squares_fits(n=st.integers(1, 4), m=st.integers(1, 8), model=st.sampled_from(["linear", "exponential"]),
                       *, dtype=None, pytree=False):
    """Least-squares fits to exact data, `f* = 0` at the generating parameters:
    `"linear"` (`1/2 |X w - y|^2`, `m >= n` rows, `X` of full column rank) or
    `"exponential"` (`y = a exp(-k t)` on `m >= 3` points of [0, 3], from `x0 = (1, 1)`)."""
    return _fits(_s(n), _s(m), _s(model), _dtype(dtype), pytree)


def mgh_problems(names=None, *, dtype=None, pytree=False):
    """The bundled Moré-Garbow-Hillstrom problems (`jm.testing.MGH_PROBLEMS`) from their
    standard starts, with their published optima; `names` restricts the choice."""
    chosen = [p for p in MGH_PROBLEMS if names is None or p.name in names]
    if not chosen:
        raise ValueError(f"no MGH problem among {names}; known: {[p.name for p in MGH_PROBLEMS]}")

    @st.composite
    def draw_one(draw):
        p, dtype_ = draw(st.sampled_from(chosen)), _resolve(draw(_dtype(dtype)))
        return _finish(draw, p, dtype_, pytree)

    return draw_one()


def problems(*, dtype=None, pytree=False):
    """Any of the families above (unconstrained, bounded and constrained)."""
    kw = dict(dtype=dtype, pytree=pytree)
    return st.one_of(quadratics(**kw), strongly_convex(**kw), least_squares_fits(**kw), box_qps(**kw),
                     constrained_qps(**kw), mgh_problems(**kw))
