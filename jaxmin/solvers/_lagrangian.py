"""The Lagrangian Hessian of SQP: Powell's damped BFGS update, or the exact Hessian
made positive definite (Nocedal & Wright, Procedure 18.2 and §3.4)."""

import jax
import jax.numpy as jnp

from .._misc import eps, max_norm
from ._trust_cg import second_order_product


def damped_bfgs(B, s, y, first):
    """Powell's damped BFGS update of `B` (N&W Procedure 18.2): `y` is replaced by
    `r = theta y + (1 - theta) B s` with `theta < 1` where `s.y < 0.2 s.B s`, so
    `s.r >= 0.2 s.B s > 0` and `B` stays positive definite. Before the first update
    `B` is rescaled to `(r.r / s.r) I` (N&W eq. 6.20)."""
    Bs = B @ s
    sBs = jnp.dot(s, Bs)
    sy = jnp.dot(s, y)
    theta = jnp.where(sy >= 0.2 * sBs, 1.0, 0.8 * sBs / jnp.where(sBs - sy > 0, sBs - sy, 1.0))
    r = theta * y + (1 - theta) * Bs
    sr = jnp.dot(s, r)
    scale = jnp.dot(r, r) / jnp.where(sr > 0, sr, 1.0)
    B0 = jnp.where(first & (sr > 0), scale * jnp.eye(B.shape[0], dtype=B.dtype), B)
    Bs = B0 @ s
    sBs = jnp.dot(s, Bs)
    ok = (sBs > eps(B) * jnp.dot(s, s) * max_norm(B0)) & (sr > 0) & jnp.all(jnp.isfinite(r))
    B_new = B0 - jnp.outer(Bs, Bs) / jnp.where(ok, sBs, 1.0) + jnp.outer(r, r) / jnp.where(ok, sr, 1.0)
    B_new = 0.5 * (B_new + B_new.T)
    return jnp.where(ok, B_new, B), ok


def _lagrangian(fn, constraints, args, lam_eq, lam_in):
    """`z -> f(z) - lam_eq.c_eq(z) - lam_in.c_in(z)`."""
    eq = None if constraints is None else constraints.eq
    ineq = None if constraints is None else constraints.ineq

    def lagrangian(z):
        out = fn(z, *args)
        if eq is not None:
            out = out - jnp.dot(lam_eq, eq(z, *args))
        if ineq is not None:
            out = out - jnp.dot(lam_in, ineq(z, *args))
        return out

    return lagrangian


def lagrangian_product(fn, constraints, x, args, lam_eq, lam_in):
    """`v -> H v` for the Hessian `H` of the Lagrangian at `x`, or `None` where `fn` or
    the constraints cannot be differentiated twice (`_trust_cg.second_order_product`):
    SQP's precision stops then go uncertified."""
    return second_order_product(jax.grad(_lagrangian(fn, constraints, args, lam_eq, lam_in)), x)


def lagrangian_hessian(fn, constraints, x, args, lam_eq, lam_in):
    """The Hessian of the Lagrangian `f - lam_eq.c_eq - lam_in.c_in` at `x` (`n`
    Hessian-vector products, forward over reverse), its eigenvalues flipped to their
    absolute values and floored at `sqrt(eps) max(1, max|eigenvalue|)`: the nearest
    (in that sense) positive definite matrix, which the QP solver needs (the
    modified-Newton strategy of N&W §3.4)."""
    H = jax.jacfwd(jax.grad(_lagrangian(fn, constraints, args, lam_eq, lam_in)))(x)
    H = 0.5 * (H + H.T)
    vals, vecs = jnp.linalg.eigh(H)
    floor = jnp.sqrt(eps(x)) * jnp.maximum(1.0, max_norm(vals))
    vals = jnp.maximum(jnp.abs(vals), floor)
    B = (vecs * vals[None, :]) @ vecs.T
    return jnp.where(jnp.all(jnp.isfinite(B)), B, jnp.eye(x.shape[0], dtype=x.dtype))


def update_after_step(B, num_updates, s, y, y_noise, moved, frozen, kept):
    """SQP's Hessian after a step `s` with Lagrangian-gradient change `y`: Powell's
    damped BFGS update (`damped_bfgs`) where the step `moved` along the QP's `p`,
    unchanged where it is `kept` (a feasibility step, or the solve stopped), and `I`
    where the step failed (neither) or left `x` unchanged (`frozen`): an enormous `B` makes
    the QP step vanish below x's rounding, and the iterates freeze far from a KKT
    point. A `y` within `y_noise` in every component (100 eps times the magnitude of
    the Lagrangian gradient's terms) carries no curvature, only rounding: updating on
    it lets B's condition grow without bound (past 1e14 in float32 within a few steps
    near a solution). Returns `(B, num_updates)`, the count restarting at 0 with `I`."""
    B_new, updated = damped_bfgs(B, s, y, num_updates == 0)
    resolved = jnp.any(jnp.abs(y) > y_noise)
    B_new = jnp.where(resolved, B_new, B)
    updated = updated & resolved
    normal = moved & ~frozen
    eye = jnp.eye(B.shape[0], dtype=B.dtype)
    B_new = jnp.where(normal, B_new, jnp.where(kept, B, eye))
    count = jnp.where(normal, num_updates + updated.astype(jnp.int32), jnp.where(kept, num_updates, 0))
    return B_new, count
