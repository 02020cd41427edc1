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
