"""The conveniences users of SciPy and Optimistix reach for first: `has_aux`, `callback`,
`verbose`, a readable `print(sol)`, `minimize_batch` over pytrees, clear errors for
common mistakes, and derivatives that are never a silent guess."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmin as jm

_D = jnp.array([1.0, 10.0, 100.0])


def _quadratic(x, c):
    # minimiser c, Hessian diag(_D): closed-form truth for x* and dx*/dc = I
    return 0.5 * jnp.sum(_D * (x - c) ** 2)


def _with_aux(x, c):
    return _quadratic(x, c), {"residual": x - c, "scale": jnp.sum(x)}


_C = jnp.array([1.0, -2.0, 0.5])
_X0 = jnp.zeros(3)


# ------------------------------------------------------------------------ has_aux
def test_has_aux_returns_aux_at_the_solution_and_the_same_solve():
    plain = jm.minimize(_quadratic, _X0, args=(_C,))
    sol = jm.minimize(_with_aux, _X0, args=(_C,), has_aux=True)
    assert plain.aux is None
    np.testing.assert_array_equal(sol.x, plain.x)
    assert int(sol.num_fun_evals) == int(plain.num_fun_evals)
    _, aux = _with_aux(sol.x, _C)
    np.testing.assert_allclose(sol.aux["residual"], aux["residual"])
    np.testing.assert_allclose(sol.aux["scale"], float(jnp.sum(_C)), rtol=1e-5)


def test_aux_differentiates_like_x():
    # scale = sum(x*(c)) = sum(c): d scale / dc = ones (closed form)
    grad = jax.grad(lambda c: jm.minimize(_with_aux, _X0, args=(c,), has_aux=True).aux["scale"])(_C)
    np.testing.assert_allclose(grad, np.ones(3), rtol=1e-4)


def test_has_aux_mistakes_say_what_to_do():
    with pytest.raises(ValueError, match="has_aux=True"):
        jm.minimize(_with_aux, _X0, args=(_C,))
    with pytest.raises(ValueError, match=r"pair `\(value, aux\)`"):
        jm.minimize(_quadratic, _X0, args=(_C,), has_aux=True)


# ----------------------------------------------------------------------- callback
def test_callback_sees_every_step_with_values_of_that_step():
    seen = []
    sol = jm.minimize(lambda t, c: _quadratic(t["x"], c), {"x": _X0}, args=(_C,),
                      callback=lambda k, x, f, g: seen.append((k, x["x"].copy(), float(f), g["x"].copy())))
    assert [k for k, *_ in seen] == list(range(int(sol.num_steps) + 1))
    for _, x, f, g in seen:
        np.testing.assert_allclose(f, float(_quadratic(jnp.asarray(x), _C)), rtol=1e-6)
        np.testing.assert_allclose(g, _D * (x - _C), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(seen[-1][1], sol.x["x"])


def test_callback_runs_under_jit_and_rejects_non_functions():
    seen = []
    jax.jit(lambda c: jm.minimize(_quadratic, _X0, args=(c,), callback=lambda k, *_: seen.append(k)).x)(_C)
    assert seen[0] == 0 and seen == sorted(seen) and len(seen) > 1
    with pytest.raises(TypeError, match="callback"):
        jm.minimize(_quadratic, _X0, args=(_C,), callback="print")


# ------------------------------------------------------------------------ verbose
def test_verbose_header_start_steps_and_summary(capfd):
    sol = jm.minimize(_quadratic, _X0, args=(_C,), verbose=True)
    lines = capfd.readouterr().out.strip().splitlines()
    assert lines[0].startswith("columns:") and "alpha" in lines[0] and "ls_evals" in lines[0]
    steps = [line for line in lines if line.startswith("step ")]
    assert [int(line.split()[1]) for line in steps] == list(range(int(sol.num_steps) + 1))
    assert lines[-1].startswith("done: CONVERGED") and f"after {int(sol.num_steps)} steps" in lines[-1]


def test_verbose_under_vmap_prefixes_the_member(capfd):
    c = jnp.stack([_C, 2 * _C])
    jax.vmap(lambda c: jm.minimize(_quadratic, _X0, args=(c,), verbose=True, max_steps=2).x)(c)
    lines = capfd.readouterr().out.strip().splitlines()
    assert {line[:3] for line in lines} == {"[0]", "[1]"}
    assert sum("done:" in line for line in lines) == 2


# -------------------------------------------------------------------------- print
def test_print_of_a_solution_shows_values_verdict_and_message():
    sol = jm.minimize(_quadratic, _X0, args=(_C,), max_steps=1)
    text = repr(sol)
    assert text.startswith("Solution(MAX_STEPS") and "1 steps" in text and sol.message in text
    assert f"{float(sol.fun):.9g}" in text


def test_print_of_a_batch_counts_statuses():
    c = jnp.stack([_C, 2 * _C, 3 * _C])
    sols = jax.vmap(lambda c, m: jm.minimize(_quadratic, _X0 + m, args=(c,), max_steps=3))(c, jnp.array([0.0, 0.0, 1e3]))
    done = int(np.sum(np.asarray(sols.success)))
    assert str(sols).startswith(f"Solution(batch of 3: {done} succeeded")


# ------------------------------------------------------------ minimize_batch trees
def test_minimize_batch_takes_pytrees_and_matches_each_members_solve():
    def fn(t, c):
        return _quadratic(t["a"], c) + jnp.sum((t["b"] - c[0]) ** 2)

    rng = np.random.default_rng(0)
    x0 = {"a": jnp.asarray(rng.normal(size=(4, 3))), "b": jnp.zeros((4, 2))}
    c = jnp.asarray(rng.normal(size=(4, 3)))
    batch = jm.minimize_batch(fn, x0, args=(c,))
    for i in range(4):
        one = jm.minimize(fn, jax.tree.map(lambda v: v[i], x0), args=(c[i],))
        assert int(batch.status[i]) == int(one.status)
        np.testing.assert_allclose(batch.x["a"][i], c[i], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(batch.x["b"][i], jnp.full(2, c[i, 0]), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="same batch size"):
        jm.minimize_batch(fn, {"a": jnp.zeros((4, 3)), "b": jnp.zeros((3, 2))}, args=(c,))


# ------------------------------------------------------------------ clear errors
def test_python_list_x0_is_refused_with_advice():
    with pytest.raises(TypeError, match="jnp.asarray"):
        jm.minimize(_quadratic, [0.0, 0.0, 0.0], args=(_C,))


def test_python_number_inside_fn_is_explained():
    with pytest.raises(TypeError, match="Python or NumPy number"):
        jm.minimize(lambda x: float(jnp.sum(x**2)), _X0)


def test_python_if_in_a_schedule_is_explained():
    with pytest.raises(TypeError, match="jnp.where"):
        jm.minimize(_quadratic, _X0, jm.GradientDescent(lambda k: 0.01 if k < 3 else 0.001), args=(_C,))


# ------------------------------------------- derivatives are never a silent guess
def test_failed_tangent_solve_gives_nan_or_raises():
    def x_star(c, linear, throw=False):
        return jm.minimize(_quadratic, _X0, args=(c,), implicit_solver=linear, throw=throw).x

    capped = jm.linear.CG(max_steps=1)  # 3 distinct curvatures need 3 CG steps
    np.testing.assert_allclose(jax.grad(lambda c: x_star(c, jm.linear.CG()).sum())(_C), np.ones(3), rtol=1e-4)
    assert np.all(np.isnan(jax.grad(lambda c: x_star(c, capped).sum())(_C)))
    _, tangent = jax.jvp(lambda c: x_star(c, capped), (_C,), (jnp.ones(3),))
    assert np.all(np.isnan(tangent))
    with pytest.raises(Exception, match="a linear solve did not converge"):
        jax.grad(lambda c: x_star(c, capped, throw=True).sum())(_C)
