"""Approximate-Wolfe line search of Hager & Zhang (SIAM J. Optim. 16(1), 2005;
ACM TOMS 32(1), 2006, "Algorithm 851: CG_DESCENT").

Notation: `phi(alpha) = f(x + alpha p)`, `dphi = grad f . p`; the interval `[a, b]`
satisfies the "opposite slope" condition `phi(a) <= phi(0) + eps_k`, `dphi(a) < 0`,
`dphi(b) >= 0`, with `eps_k = epsilon |phi(0)|`.
"""

import equinox as eqx
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, Scalar

from .._misc import as_dtype, eps
from .._typing import ScalarLike, Vector
from ._base import AbstractLineSearch, best_or_last, evaluate

# The phase the pending trial belongs to (the paper's steps in brackets).
_BRACKET = 0  # expanding the first trial by rho until [a, b] is found (B0-B3)
_SHRINK = 1  # restoring opposite slopes inside [a, b] by theta-steps (U3a-c)
_SECANT = 2  # the first secant step of secant^2 (S1)
_SECANT2 = 3  # its second secant step (S2-S4)
_BISECT = 4  # the bisection after a secant^2 that shrank [a, b] too little (L2)


class _Search(eqx.Module):
    stage: Int[Array, ""]
    c: Scalar  # the pending trial
    # the interval (in `_SHRINK`: the paper's a-hat, b-hat)
    a: Scalar
    da: Scalar
    b: Scalar
    db: Scalar
    w: Scalar  # b - a when the current secant^2 began (`inf`: begin a new one)
    # the lowest trial so far, and the last trial
    a_best: Scalar
    f_best: Scalar
    g_best: Vector
    a_last: Scalar
    f: Scalar
    g: Vector
    done: Bool[Array, ""]
    stop: Bool[Array, ""]
    n: Int[Array, ""]


def _secant(a, da, b, db):
    """The zero of the line through `(a, da)` and `(b, db)` (NaN where they are level)."""
    return (a * db - b * da) / (db - da)


def _inside(c, a, b):
    return (c > jnp.minimum(a, b)) & (c < jnp.maximum(a, b))


def _next_trial(s: _Search, c, d, up, low, high, interval, gamma, theta, rho):
    """The stage, trial and secant^2 starting width after trial `c` (slope `d`) of
    search `s`, which moved the interval to `interval = (a, da, b, db)`; `up`, `low`,
    `high`: how `c` updated it (see `HagerZhang.__call__`)."""
    a, da, b, db = interval
    # L2-L3: once [a, b] is found, bisect if the last secant^2 kept more than
    # gamma of the interval, else start a new secant^2 (S1) if its step lies
    # inside (U0). After the bracket or a bisection, a new one always starts.
    w = jnp.where((s.stage == _BRACKET) | (s.stage == _BISECT), jnp.inf, s.w)
    bisect = (b - a) > gamma * w
    secant = _secant(a, da, b, db)
    start_secant = ~bisect & _inside(secant, a, b)
    stage = jnp.where(start_secant, _SECANT, _BISECT)
    trial = jnp.where(start_secant, secant, a + 0.5 * (b - a))
    new_w = jnp.where(start_secant, b - a, w)
    # S2-S4: the first secant step became an end of the interval; the second
    # goes through it and the end it replaced
    secant2 = jnp.where(up, _secant(s.b, s.db, c, d), _secant(s.a, s.da, c, d))
    second = (s.stage == _SECANT) & ~high & _inside(secant2, a, b)
    # U3: step towards a by theta until the slopes are opposite again
    shrink = high | ((s.stage == _SHRINK) & low)
    # B3: still descending and acceptable: expand
    expand = (s.stage == _BRACKET) & low
    stage = jnp.select([expand, shrink, second], [_BRACKET, _SHRINK, _SECANT2], stage)
    trial = jnp.select(
        [expand, shrink, second], [rho * c, (1 - theta) * a + theta * b, secant2], trial
    )
    # a secant^2 in progress (or the shrink inside it) keeps its starting width
    new_w = jnp.where(expand | shrink | second, w, new_w)
    return stage, trial, new_w


class HagerZhang(AbstractLineSearch):
    """A step satisfying the Wolfe or the approximate Wolfe conditions (Hager & Zhang
    2005, 2006).

    Wolfe: `phi(alpha) - phi(0) <= delta alpha dphi(0)` and
    `dphi(alpha) >= sigma dphi(0)`. Approximate Wolfe:
    `(2 delta - 1) dphi(0) >= dphi(alpha) >= sigma dphi(0)` and
    `phi(alpha) <= phi(0) + epsilon |phi(0)|`. The approximate conditions need only
    slopes, which stay accurate where rounding hides the decrease of f near a
    minimiser, so a search can still succeed there; the step may then raise f by up
    to `epsilon |phi(0)|`.

    The first trial `alpha0` grows by `rho` until a step with `dphi >= 0`, or one with
    `phi > phi(0) + eps_k`, brackets a point satisfying them (`bracket`, B0-B3); the
    interval then shrinks by double secant steps (`secant^2`, S1-S4), with a bisection
    whenever a `secant^2` leaves more than `gamma` of the interval (L2), and every new
    point is placed by `update` (U0-U3, which bisects in the ratio `theta` to restore
    opposite slopes). The bracket keeps the latest step with `phi <= phi(0) + eps_k` as
    its left end (the paper's B1; B2 uses 0). The search stops at the first trial that
    meets either set of conditions. A NaN or inf trial counts as a step that is too
    long. The initial-step rules of CG_DESCENT (I0-I2) are the solver's business:
    `alpha0` is tried as given.

    Choose it when a solve ends `LINESEARCH_FAILED` or `STAGNATED` close to a
    minimiser in float32, where f's rounding hides its decrease but slopes are still
    accurate; or as the search of `jm.GradientDescent(..., linesearch=...)`.

    **Arguments:**

    - `delta` (default `0.1`), `sigma` (default `0.9`): Wolfe constants,
      `0 < delta < 0.5`, `delta <= sigma < 1`, dimensionless.
    - `epsilon` (default `1e-6`): the allowed increase of f, relative to `|phi(0)|`.
    - `theta` (default `0.5`): the ratio of `update`'s bisection (U3), in (0, 1).
    - `gamma` (default `0.66`): a `secant^2` that leaves more than `gamma` of the
      interval is followed by a bisection, in (0, 1).
    - `rho` (default `5.0`): the bracket's expansion factor, greater than 1.
    - `max_steps` (default `30`): most evaluations of f; the search fails
      (`ok=False`) after them.

    **Example:**

    ```python
    solver = jm.LBFGS(linesearch=jm.linesearch.HagerZhang())
    ```
    """

    delta: ScalarLike = 0.1
    sigma: ScalarLike = 0.9
    epsilon: ScalarLike = 1e-6
    theta: ScalarLike = 0.5
    gamma: ScalarLike = 0.66
    rho: ScalarLike = 5.0
    max_steps: int = eqx.field(default=30, static=True)

    def __check_init__(self):
        number = lambda v: isinstance(v, (int, float))
        delta, sigma = self.delta, self.sigma
        if number(delta) and number(sigma) and not (0 < delta < 0.5 and delta <= sigma < 1):
            raise ValueError(
                "`HagerZhang` needs 0 < delta < 0.5 and delta <= sigma < 1; "
                f"got delta={delta}, sigma={sigma}."
            )
        for name, low, high in (("theta", 0, 1), ("gamma", 0, 1)):
            value = getattr(self, name)
            if number(value) and not low < value < high:
                raise ValueError(f"`HagerZhang({name}=...)` must lie in (0, 1); got {value}.")
        if number(self.epsilon) and self.epsilon < 0:
            raise ValueError(f"`HagerZhang(epsilon=...)` must be non-negative; got {self.epsilon}.")
        if number(self.rho) and not self.rho > 1:
            raise ValueError(f"`HagerZhang(rho=...)` must exceed 1; got {self.rho}.")
        if self.max_steps < 1:
            raise ValueError("`HagerZhang(max_steps=...)` must be at least 1.")

    def __call__(self, f_and_g, x, p, f0, g0, alpha0=1.0):
        delta, sigma, theta, gamma, rho = (
            as_dtype(v, x) for v in (self.delta, self.sigma, self.theta, self.gamma, self.rho)
        )
        dphi0 = jnp.dot(g0, p)
        f_ok = f0 + as_dtype(self.epsilon, x) * jnp.abs(f0)  # phi(0) + eps_k
        inf = jnp.array(jnp.inf, x.dtype)

        def body(s: _Search) -> _Search:
            c = s.c
            f, g, d = evaluate(f_and_g, x, p, c)
            finite = jnp.isfinite(f)
            wolfe = (f - f0 <= delta * c * dphi0) & (d >= sigma * dphi0)
            approx = (f <= f_ok) & ((2 * delta - 1) * dphi0 >= d) & (d >= sigma * dphi0)
            done = finite & (wolfe | approx)
            up = finite & (d >= 0)  # c closes the interval on the right (B1, U1)
            low = finite & ~up & (f <= f_ok)  # c is a new left end (B3, U2, U3b)
            high = ~up & ~low  # too long, NaN included: shrink towards a (B2, U3a, U3c)

            # every case of `update`: a new left end replaces a, anything else b
            a, da = jnp.where(low, c, s.a), jnp.where(low, d, s.da)
            b, db = jnp.where(low, s.b, c), jnp.where(low, s.db, d)

            stage, trial, new_w = _next_trial(s, c, d, up, low, high, (a, da, b, db), gamma, theta, rho)

            # the interval can no longer shrink (f need not resolve it: the slopes of
            # the approximate conditions may still)
            collapsed = (stage != _BRACKET) & (b - a <= eps(x) * b)
            better = f < s.f_best
            return _Search(
                stage=stage.astype(jnp.int32), c=trial, a=a, da=da, b=b, db=db, w=new_w,
                a_best=jnp.where(better, c, s.a_best), f_best=jnp.where(better, f, s.f_best),
                g_best=jnp.where(better, g, s.g_best), a_last=c, f=f, g=g, done=done,
                stop=done | collapsed, n=s.n + 1,
            )

        def cond(s: _Search):
            return ~s.stop & (s.n < self.max_steps)

        zero = jnp.zeros((), x.dtype)
        start = _Search(
            stage=jnp.array(_BRACKET, jnp.int32), c=as_dtype(alpha0, x),
            a=zero, da=dphi0, b=zero, db=zero, w=inf,
            a_best=zero, f_best=f0, g_best=g0, a_last=zero, f=f0, g=g0,
            done=jnp.array(False), stop=jnp.array(False), n=jnp.array(0, jnp.int32),
        )
        s = lax.while_loop(cond, body, start)
        # success: the last trial; failure: the lowest trial if it decreased f
        use_best = ~s.done & (s.a_best > 0)
        return best_or_last(use_best, (s.a_best, s.f_best, s.g_best), (s.a_last, s.f, s.g),
                            s.done, s.n)
