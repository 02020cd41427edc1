"""`check_derivatives`: derivatives through a solution against finite differences.

A wrong hypergradient (a derivative rule that ignores a dependence, a wrong custom
JVP, derivatives of an unconverged solve) shows as a disagreement between
`jax.jvp`/`jax.vjp` of `solve` and central differences of `solve` itself (Nocedal &
Wright §8.1), beyond the differences' own error, which is estimated from a second
step (`_finite_difference.py`).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Bool, Float, Int

from ._defaults import fd_rtol, fd_step
from ._finite_difference import differences, evaluate, random_directions, stencil
from ._report import AbstractReport, item, verdict


class DerivativeReport(AbstractReport):
    """What `check_derivatives` found, per direction `v` of `theta`.

    **Fields:**

    - `forward_error`: `|jvp(v) - fd(v)|_2` over the flattened output; `forward_tol`:
      `atol + 3 max(fd_error) + rtol max(|jvp(v)|, |fd(v)|)`; `jvp_norm`, `fd_norm`.
    - `reverse_error`: `|<vjp(u), v> - <u, fd(v)>|` for one random output cotangent
      `u` (for a scalar output: `jax.grad . v` against the difference quotient);
      `reverse_tol` likewise (`nan` when `reverse=False`).
    - `fd_error`: the estimated error of each central difference.
    - `relative_error`: `forward_error / max(|jvp|, |fd|)`, for reading.
    - `step`: the difference step; `forward_ok`, `reverse_ok`, `passed`.
    - `num_evals`: evaluations of `solve` (forward and reverse passes included).
    """

    forward_error: Float[Array, "*b k"]
    forward_tol: Float[Array, "*b k"]
    reverse_error: Float[Array, "*b k"]
    reverse_tol: Float[Array, "*b k"]
    fd_error: Float[Array, "*b k"]
    relative_error: Float[Array, "*b k"]
    jvp_norm: Float[Array, "*b k"]
    fd_norm: Float[Array, "*b k"]
    step: Float[Array, "*b"]
    forward_ok: Bool[Array, "*b"]
    reverse_ok: Bool[Array, "*b"]
    num_evals: Int[Array, "*b"]

    def lines(self, index):
        get = lambda a: item(a, index)  # noqa: E731
        head = "agree" if get(self.passed) else "DISAGREE"
        out = [f"check_derivatives: derivatives and finite differences {head} (step {get(self.step):.3g})"]
        rev_err, rev_tol = get(self.reverse_error), get(self.reverse_tol)
        for i, (e, t, rel) in enumerate(zip(get(self.forward_error), get(self.forward_tol), get(self.relative_error))):
            line = (
                f"  direction {i}: jvp |{get(self.jvp_norm)[i]:.6g}| vs fd |{get(self.fd_norm)[i]:.6g}|, "
                f"error {e:.3g} <= {t:.3g} (relative {rel:.2g})  {verdict(e <= t)}"
            )
            if rev_err[i] == rev_err[i]:
                line += f"; vjp error {rev_err[i]:.3g} <= {rev_tol[i]:.3g}  {verdict(rev_err[i] <= rev_tol[i])}"
            out.append(line)
        return out


def check_derivatives(
    solve, theta, *, directions=3, rtol=None, atol=0.0, step=None, reverse: bool = True, key=None
) -> DerivativeReport:
    """Compare `jax.jvp` and `jax.vjp` (`jax.grad` for a scalar output) of `solve` at
    `theta` with central finite differences of `solve`.

    **Arguments:**

    - `solve`: `solve(theta)` returning an array, a scalar or a pytree of floating
      arrays, e.g. `lambda lam: jm.minimize(fn, x0, args=(lam,)).x`. It is evaluated
      under `jax.vmap` (one batched call for all difference points) and `jax.jit`.
    - `theta`: a pytree of floating arrays.
    - `directions`: a number of random directions (unit infinity norm, from `key`,
      default `jax.random.key(0)`; at most the size of `theta`), or a sequence of
      pytrees shaped like `theta`.
    - `rtol`, `atol`: a direction passes when the discrepancy is at most `atol + 3
      max(fd_error) + rtol max(|jvp|, |fd|)`; `rtol` defaults to `eps^(1/4)` of
      theta's dtype (1.2e-4 in float64, 1.9e-2 in float32).
    - `step`: the difference step; default `eps^(1/3) max(1, |theta|_inf)` (N&W §8.1).
      An inner solve accurate to `delta` adds noise `delta / step` to the differences,
      which `fd_error` measures; solve tightly (small `gtol`) or pass a larger step.
    - `reverse`: also check reverse mode with one random output cotangent.

    Returns a `DerivativeReport`, truthy when every direction agrees: `assert report,
    report.why`. Cost: `4 k` evaluations of `solve` for `k` directions, plus one
    forward-mode pass per direction and one reverse pass.

    **Example:**

    ```python
    def ridge(w, lam):
        return jnp.sum((w - 1.0) ** 2) + lam * jnp.sum(w**2)

    def solve(lam):
        return jm.minimize(ridge, jnp.zeros(3), jm.LBFGS(gtol=1e-10), args=(lam,)).x

    report = jm.testing.check_derivatives(solve, 0.5)
    assert report, report.why
    ```
    """
    theta = jax.tree.map(jnp.asarray, theta)
    leaves = jax.tree.leaves(theta)
    if not leaves or not all(jnp.issubdtype(v.dtype, jnp.floating) for v in leaves):
        raise ValueError("`theta` must be a pytree of floating arrays.")
    theta_flat, _ = ravel_pytree(theta)
    dtype = theta_flat.dtype
    key = jr.key(0) if key is None else key
    v_key, u_key = jr.split(key)
    if isinstance(directions, int):
        # (a scalar theta has one direction)
        V = random_directions(v_key, min(directions, theta_flat.shape[0]), theta_flat.shape[0], dtype)
    else:
        V = jnp.stack([ravel_pytree(jax.tree.map(jnp.asarray, v))[0].astype(dtype) for v in directions])
    if step is None:
        step = fd_step(dtype) * max(1.0, float(jnp.max(jnp.abs(theta_flat))))
    rtol = fd_rtol(dtype) if rtol is None else rtol
    return _compare(
        solve, theta, V, jnp.asarray(step, dtype), jnp.asarray(rtol, dtype), jnp.asarray(atol, dtype),
        u_key, reverse,
    )


@eqx.filter_jit
def _compare(solve, theta, V, h, rtol, atol, u_key, reverse):
    theta, unravel = ravel_pytree(theta)
    dtype = theta.dtype

    def y(t):
        return ravel_pytree(solve(unravel(t)))[0].astype(dtype)

    values = evaluate(y, stencil(theta, V, h))
    fd, fd_err = differences(values, h)
    jvps = jax.vmap(lambda v: jax.jvp(y, (theta,), (v,))[1])(V)
    jvp_norm, fd_norm = jnp.linalg.norm(jvps, axis=1), jnp.linalg.norm(fd, axis=1)
    forward_error = jnp.linalg.norm(jvps - fd, axis=1)
    scale = jnp.maximum(jvp_norm, fd_norm)
    forward_tol = atol + 3.0 * jnp.max(fd_err) + rtol * scale
    forward_ok = jnp.all(forward_error <= forward_tol)
    if reverse:
        y0, vjp = jax.vjp(y, theta)
        u = jr.normal(u_key, y0.shape, dtype)
        (r,) = vjp(u)
        rev, fd_rev = V @ r, fd @ u
        _, rev_err = differences((values @ u)[:, None], h)
        reverse_error = jnp.abs(rev - fd_rev)
        reverse_tol = atol + 3.0 * jnp.max(rev_err) + rtol * jnp.maximum(jnp.abs(rev), jnp.abs(fd_rev))
        reverse_ok = jnp.all(reverse_error <= reverse_tol)
    else:
        reverse_error = reverse_tol = jnp.full(V.shape[0], jnp.nan, dtype)
        reverse_ok = jnp.ones((), bool)
    k = V.shape[0]
    return DerivativeReport(
        passed=forward_ok & reverse_ok,
        forward_error=forward_error, forward_tol=forward_tol,
        reverse_error=reverse_error, reverse_tol=reverse_tol,
        fd_error=fd_err, relative_error=forward_error / jnp.maximum(scale, jnp.finfo(dtype).tiny),
        jvp_norm=jvp_norm, fd_norm=fd_norm, step=h,
        forward_ok=forward_ok, reverse_ok=reverse_ok,
        num_evals=jnp.asarray(4 * k + 1 + (1 if reverse else 0), jnp.int32),
    )
