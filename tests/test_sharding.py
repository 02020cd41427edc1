"""Runs tests/sharded/ in its own process on 8 simulated CPU devices.

XLA fixes the device count when the backend starts, so those tests cannot share this
process (and the rest of the suite keeps one device). See tests/sharded/test_sharded.py
for what they check: batched solves sharded along the batch axis, and one problem
sharded across devices, with the compiled program's collectives inspected.
"""

import os
import pathlib
import subprocess
import sys

SHARDED = pathlib.Path(__file__).parent / "sharded"


def test_sharded_suite_on_8_cpu_devices():
    env = {
        **os.environ,
        "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip(),
        "JAX_PLATFORMS": "cpu",
        "JAXMIN_SHARDED_TESTS": "1",
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-q", str(SHARDED)],
        check=False, env=env, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, f"sharded tests failed:\n{run.stdout}\n{run.stderr}"
    assert " passed" in run.stdout and " skipped" not in run.stdout, run.stdout


# ------------------------------------------------- compaction helper (one device)
def _rosenbrock(x, b):
    return b * (x[1] - x[0] ** 2) ** 2 + (1.0 - x[0]) ** 2


def test_minimize_batch_takes_each_members_own_steps():
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxmin as jm
    from jaxmin import minimize_batch

    rng = np.random.default_rng(0)
    x0 = jnp.asarray(np.array([-1.2, 1.0]) + 0.1 * rng.standard_normal((12, 2)))
    # ten members converge in ~35-40 steps; member 3 needs ~250 (it converges after the
    # batch has compacted to two members) and member 8 ~500, past the cap of 400 (it
    # runs alone to the cap): one max_steps (one set of compilations) covers both
    b = jnp.full(12, 100.0).at[3].set(1e5).at[8].set(1e6)
    solver = jm.LBFGS(gtol=1e-8)
    max_steps = 400
    ref = jax.vmap(lambda x0, b: jm.minimize(_rosenbrock, x0, solver, args=(b,), max_steps=max_steps))(x0, b)
    sol = minimize_batch(_rosenbrock, x0, solver, (b,), max_steps=max_steps, chunk=4)
    for field in ("x", "fun", "grad", "status", "num_steps", "num_fun_evals"):
        np.testing.assert_array_equal(np.asarray(getattr(sol, field)), np.asarray(getattr(ref, field)))
    assert int(sol.status[8]) == jm.Status.MAX_STEPS and int(sol.num_steps[8]) == max_steps
    assert bool(sol.success[3]) and int(sol.num_steps[3]) > 100 and int(jnp.sum(sol.success)) == 11
