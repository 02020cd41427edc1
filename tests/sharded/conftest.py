"""Tests that need 8 devices. `tests/test_sharding.py` runs them in their own process
with `XLA_FLAGS=--xla_force_host_platform_device_count=8` (8 simulated CPU devices)
and `JAXMIN_SHARDED_TESTS=1`; a plain `pytest tests` collects nothing here, so the
rest of the suite keeps its single device."""

import os

if os.environ.get("JAXMIN_SHARDED_TESTS") != "1":
    collect_ignore_glob = ["test_*.py"]
