"""Test configuration: float64, four CPU devices, rank promotion raises; jaxtyping runtime checks opt-in;
one persistent JAX compilation cache shared by the xdist workers and the subprocesses they start."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see jaxrnn/__init__.py

# XLA compilation dominates the suite (a tiny sweep's programs take ~15 s to compile on one core, its
# run well under a second). A session-wide on-disk cache lets every process compile a program once: the
# xdist workers (each a process) and the `jaxrnn run` subprocesses (SIGKILL/resume, multi-process, CLI)
# inherit this directory through the environment, so a program one of them compiled is loaded, not
# recompiled, by the others. The cache is keyed by the program, the compile options, the devices and
# the jax/jaxlib versions, so a hit is the same executable. A fresh empty directory per session (the
# process that makes it, the xdist controller or a plain pytest, removes it at exit): a run never sees
# programs from an earlier run. Set JAX_COMPILATION_CACHE_DIR yourself to keep one between runs.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="jaxrnn-test-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
# every program, however small: a fresh process (an xdist worker, a `jaxrnn run` subprocess) otherwise
# recompiles ~100 small ones (PRNG, slicing, reductions; ~4 s on one core) that another process already built
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
# catch shape bugs early: no implicit rank promotion anywhere in the package or the tests
jax.config.update("jax_numpy_rank_promotion", "raise")

# runtime checks of the jaxtyping annotations (shapes and dtypes of every annotated jaxrnn function):
# opt-in with JAXRNN_TYPECHECK=1 (beartype needed); not yet clean across the suite, see docs/core.md
if os.environ.get("JAXRNN_TYPECHECK", "0") == "1":
    from jaxtyping import install_import_hook  # noqa: E402

    install_import_hook("jaxrnn", "beartype.beartype")
