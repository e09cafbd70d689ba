"""Test configuration: float64, four CPU devices, strict dtype promotion is left off (jax default)."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see jaxrnn/__init__.py

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
