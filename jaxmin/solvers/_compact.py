"""The limited-memory model of L-BFGS-B in compact form (Byrd, Nocedal & Schnabel 1994,
eq. 3.5, as written in Byrd, Lu, Nocedal & Zhu 1995, eq. 3.2-3.4):

    B = theta I - W M W^T,   W = [Y, theta S],   M = [[-D, L^T], [L, theta S^T S]]^-1,

with `D = diag(s_i.y_i)` and `L_ij = s_i.y_j` for pair `i` newer than pair `j`.

`Memory` holds the pairs and every inner product the step needs, kept up to date as
the Fortran code keeps them (Zhu et al. 1997, routines `matupd` and `formk`) instead of
recomputed from the `2m x n` histories:

- `S^T Y`, `S^T S`: one new row and column per stored pair (`add_pair`).
- `[Y S]^T Z Z^T [Y S]` over the free variables `Z` of the last Cauchy point (the
  subspace step's `W^T Z Z^T W`): a new row and column per pair, and, when the free set
  changes, the outer products of the columns of the variables that entered or left it
  (`update_free`). That is O(m^2) per changed variable instead of O(m^2 n).

`compact` turns the memory into the `2m x 2m` middle matrix `M`, whose cost does not
grow with `n`. `W` is never formed: `W^T v = scale * ([Y S]^T v)` with
`scale = [1, ..., 1, theta, ..., theta]`.

Notation: `s`, `y` pairs; `theta = y.y / s.y` of the newest; `m` pairs at most.
"""

import equinox as eqx
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, Scalar

from .._misc import eps
from .._typing import Vector

# The free set's change is applied variable by variable when at most
# `n // CHANGED_FRACTION` variables changed (in `n // FEW_CHANGED` slots when that
# holds them); a larger change, or `n <= SMALL_N`, rebuilds the free Gram matrix
# (O(m^2 n)).
CHANGED_FRACTION = 8
FEW_CHANGED = 64
SMALL_N = 512


class Memory(eqx.Module):
    """The stored pairs and their inner products. Row `i < m` of `ys` is `y_i`, row
    `m + i` is `s_i` (ring buffers: the newest pair in slot `(k - 1) % m`)."""

    ys: Float[Array, "2m n"]
    sy: Float[Array, "m m"]  # sy[i, j] = s_i.y_j
    ss: Float[Array, "m m"]  # ss[i, j] = s_i.s_j
    free: Bool[Array, " n"]  # the free set `free_gram` is taken over
    free_gram: Float[Array, "2m 2m"]  # ys diag(free) ys^T
    k: Int[Array, ""]  # pairs stored since the last reset
    theta: Scalar  # y.y / s.y of the newest pair (1 with none)


def empty_memory(m: int, x: Vector) -> Memory:
    n = x.shape[0]
    return Memory(
        ys=jnp.zeros((2 * m, n), x.dtype), sy=jnp.zeros((m, m), x.dtype), ss=jnp.zeros((m, m), x.dtype),
        free=jnp.ones(n, bool), free_gram=jnp.zeros((2 * m, 2 * m), x.dtype),
        k=jnp.array(0, jnp.int32), theta=jnp.ones((), x.dtype),
    )


def _set_row_col(mat, i, v):
    """`mat` with row and column `i` set to `v`. (By selects, not scatters: on these
    small matrices XLA:CPU fuses selects into one kernel, where each scatter would be a
    kernel of its own to compile.)"""
    idx = jnp.arange(mat.shape[0], dtype=i.dtype)
    return jnp.where((idx == i)[None, :], v[:, None], jnp.where((idx == i)[:, None], v[None, :], mat))


def add_pair(memory: Memory, s: Vector, y: Vector, g: Vector, failed: Bool[Array, ""]) -> Memory:
    """Store `(s, y)` (taken from `x` with gradient `g`) unless the step `failed` or the
    pair fails L-BFGS-B's curvature test `s.y > eps (-g.s)`; a failure forgets every
    pair (`k = 0`, `theta = 1`). The new pair's inner products with all stored ones
    come from one pass over the histories: O(m n)."""
    m = memory.sy.shape[0]
    sy_new, yy = jnp.dot(s, y), jnp.dot(y, y)
    store = ~failed & (sy_new > eps(s) * -jnp.dot(g, s))
    row = memory.k % m
    # both rows read before either is written, so the history is updated in place
    y_row, s_row = jnp.where(store, y, memory.ys[row]), jnp.where(store, s, memory.ys[m + row])
    ys = memory.ys.at[row].set(y_row).at[m + row].set(s_row)
    # every product with the new pair from one pass over the histories: 2m x 4
    free = memory.free
    products = ys @ jnp.stack([y, s, jnp.where(free, y, 0.0), jnp.where(free, s, 0.0)], axis=1)
    slot = jnp.arange(m, dtype=row.dtype)
    sy = jnp.where((slot == row)[:, None], products[:m, 1][None, :], memory.sy)
    sy = jnp.where((slot == row)[None, :], products[m:, 0][:, None], sy)
    ss = _set_row_col(memory.ss, row, products[m:, 1])
    gram = _set_row_col(memory.free_gram, row, products[:, 2])
    gram = _set_row_col(gram, m + row, products[:, 3])
    theta = jnp.where(store, yy / jnp.where(store, sy_new, 1.0), memory.theta)
    return Memory(
        ys=ys, sy=jnp.where(store, sy, memory.sy), ss=jnp.where(store, ss, memory.ss),
        free=memory.free, free_gram=jnp.where(store, gram, memory.free_gram),
        k=jnp.where(failed, 0, memory.k + store.astype(jnp.int32)),
        theta=jnp.where(failed, 1.0, theta).astype(s.dtype),
    )


def free_gram(ys: Float[Array, "2m n"], free: Bool[Array, " n"]) -> Float[Array, "2m 2m"]:
    """`ys diag(free) ys^T` from scratch: O(m^2 n)."""
    return jnp.where(free[None, :], ys, 0.0) @ ys.T


def update_free(memory: Memory, free: Bool[Array, " n"]) -> Memory:
    """The memory with its free Gram matrix taken over the new free set `free`: the
    variables that entered add their columns' outer products, those that left subtract
    them (Zhu et al. 1997, `formk`): O(m^2) per changed variable. Their columns are
    gathered by index into a fixed number of slots, `n // FEW_CHANGED` or
    `n // CHANGED_FRACTION`, whichever holds them; a larger change, or `n <= SMALL_N`,
    rebuilds the matrix (`lax.switch`: one branch runs, except under `vmap`; none when
    the free set is unchanged). The update and the rebuild agree to rounding (the sums
    run in another order)."""
    ys, n = memory.ys, free.shape[0]
    if n <= SMALL_N:  # the update would cost about a rebuild
        return eqx.tree_at(lambda mem: (mem.free, mem.free_gram), memory, (free, free_gram(ys, free)))
    changed = free != memory.free

    def incremental(slots):
        cols = jnp.nonzero(changed, size=slots, fill_value=n)[0]
        inside = cols < n
        cols = jnp.minimum(cols, n - 1)
        sign = jnp.where(inside, jnp.where(free[cols], 1.0, -1.0), 0.0).astype(ys.dtype)
        w = ys[:, cols]
        return memory.free_gram + (w * sign[None, :]) @ w.T

    few, most = n // FEW_CHANGED, n // CHANGED_FRACTION
    count = jnp.sum(changed)
    branch = jnp.where(count == 0, 0, jnp.where(count <= few, 1, jnp.where(count <= most, 2, 3)))
    branches = [lambda: memory.free_gram, lambda: incremental(few), lambda: incremental(most),
                lambda: free_gram(ys, free)]
    gram = lax.switch(branch, branches)
    return eqx.tree_at(lambda mem: (mem.free, mem.free_gram), memory, (free, gram))


class Compact(eqx.Module):
    """`B = theta I - W M W^T` from the stored pairs (`W = [Y, theta S]`)."""

    ys: Float[Array, "2m n"]
    theta: Scalar
    middle: Float[Array, "2m 2m"]  # M, zero in the rows and columns of empty slots

    @property
    def scale(self) -> Float[Array, " 2m"]:
        """`W^T = scale * [Y S]^T`: 1 for the `y` rows, `theta` for the `s` rows."""
        m = self.ys.shape[0] // 2
        return jnp.where(jnp.arange(2 * m) < m, 1.0, self.theta).astype(self.ys.dtype)

    def _halves(self) -> Float[Array, "2 m n"]:
        """`[Y; S]` as one `2 x m x n` array: a view, where slices of `ys` would be copied
        out at every product."""
        return self.ys.reshape(2, -1, self.ys.shape[1])

    def wt(self, v: Vector) -> Float[Array, " 2m"]:
        """`W^T v`."""
        yv, sv = self._halves() @ v
        return jnp.concatenate([yv, self.theta * sv])

    def w(self, u: Float[Array, " 2m"]) -> Vector:
        """`W u`."""
        wy, ws = jnp.einsum("hk,hkn->hn", u.reshape(2, -1), self._halves())
        return wy + self.theta * ws

    def curvature(self, v: Vector) -> Scalar:
        """`v^T B v`."""
        wv = self.wt(v)
        return self.theta * jnp.dot(v, v) - jnp.dot(wv, self.middle @ wv)


def compact(memory: Memory) -> Compact:
    """The compact representation of the stored pairs: `M` from `S^T Y` and `S^T S`
    alone (empty slots decouple)."""
    sy, k, theta = memory.sy, memory.k, memory.theta
    m = sy.shape[0]
    pos = (jnp.arange(m, dtype=k.dtype) - k) % m  # chronological rank: m - 1 is the newest
    valid = pos >= m - jnp.minimum(k, m)
    both = valid[:, None] & valid[None, :]
    lower = jnp.where(both & (pos[:, None] > pos[None, :]), sy, 0.0)
    d = jnp.where(valid, jnp.diagonal(sy), 0.0)
    k_mat = jnp.block([[-jnp.diag(d), lower.T], [lower, theta * jnp.where(both, memory.ss, 0.0)]])
    # empty slots: identity rows, so K stays invertible and they decouple
    valid2 = jnp.concatenate([valid, valid])
    k_mat = jnp.where(valid2[:, None] | valid2[None, :], k_mat, jnp.eye(2 * m, dtype=sy.dtype))
    middle = jnp.linalg.inv(k_mat)
    middle = jnp.where(valid2[:, None] & valid2[None, :], middle, 0.0)
    return Compact(ys=memory.ys, theta=theta, middle=middle)
