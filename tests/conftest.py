"""Test configuration: float64, four CPU devices, rank promotion raises; jaxtyping runtime checks opt-in."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see jaxrnn/__init__.py

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
# catch shape bugs early: no implicit rank promotion anywhere in the package or the tests
jax.config.update("jax_numpy_rank_promotion", "raise")

# runtime checks of the jaxtyping annotations (shapes and dtypes of every annotated jaxrnn function):
# opt-in with JAXRNN_TYPECHECK=1 (beartype needed); not yet clean across the suite, see docs/core.md
if os.environ.get("JAXRNN_TYPECHECK", "0") == "1":
    from jaxtyping import install_import_hook  # noqa: E402

    install_import_hook("jaxrnn", "beartype.beartype")
