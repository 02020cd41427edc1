import gc
import zlib

import jax
import jax.random as jr
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key(request):
    # deterministic per test, no global RNG
    return jr.key(zlib.crc32(request.node.name.encode()))


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    # each module compiles its own programs; releasing them between modules keeps a
    # long-lived xdist worker's compiled code (and XLA's memory) from piling up: a
    # worker that had compiled most of the suite segfaulted inside XLA's compiler
    yield
    jax.clear_caches()
    gc.collect()
