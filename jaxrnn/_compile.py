"""How jaxrnn's programs are compiled: the XLA options of each role of program, in one place.

A first call of `train`, and most of a small sweep, is compiling, not running. On the CPU backend two XLA
options cut that with no loss of run time (`benchmarks/bench_compile.py`, docs/core.md "Compile time"):

- `xla_cpu_use_fusion_emitters = False`: the classic elemental emitters instead of XLA's newer MLIR fusion
  emitters;
- `xla_backend_optimization_level = 1`: LLVM at -O1. Together, the exact and sampled gradients (N = 64
  and 128) compile in 1.2-1.6 s instead of 2.6-4.1 s, and run within -6%..+5% of XLA's defaults (this
  machine's noise); the threefry random bits compile 4x faster, bit for bit the same draws.

Roles: `HOT` (the default: training steps, log-point observables, small theory grids), `COLD` for a
program that runs once per `train` call (its set-up, `train._initial_state`), where compiling is all of its
cost: LLVM at -O0 (0.10 against 0.15-0.18 s at N = 64, M = 512). The observables stay `HOT` although -O0
would compile them in ~1/2 the time (0.18-0.19 against 0.33-0.41 s; their Lanczos norm alone 0.11 against
0.30 s, run 1.5x slower): under -O0 the tracked outlier came out different in its last bits (3e-17) for
different batch sizes, and a sweep's results must not depend on its chunk size (tests/test_sweep_run.py).
And `ELEMENTWISE`, for programs made of elementwise loops only (the theory's batched Rosenbrock solver): there
-O1 costs ~40% of run time, so it keeps LLVM's default level with its expensive passes off (~40% of the
compile time, no run-time cost).
Other backends (GPU, TPU) compile with XLA's defaults. An option this jaxlib does not know is dropped
(probed once per role, by compiling a one-op program), so older and newer jaxlibs keep working.
"""

from __future__ import annotations

import functools
from typing import Any, Literal
from collections.abc import Callable

import equinox as eqx
import jax
import numpy as np

__all__ = ["HOT", "COLD", "ELEMENTWISE", "Role", "compiler_options", "filter_jit", "jit"]

Role = Literal["hot", "cold", "elementwise"]
HOT: Role = "hot"
COLD: Role = "cold"
ELEMENTWISE: Role = "elementwise"

_CPU_OPTIONS: dict[str, dict[str, Any]] = {
    HOT: {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 1},
    COLD: {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 0},
    ELEMENTWISE: {"xla_cpu_use_fusion_emitters": False, "xla_llvm_disable_expensive_passes": True},
}


@functools.cache
def _accepted(options: tuple[tuple[str, Any], ...]) -> bool:
    """Whether this jaxlib's CPU compiler accepts all these options (a one-op program, ~20 ms, once)."""
    try:
        jax.jit(lambda x: x + 1, compiler_options=dict(options))(np.float32(0))
    except (RuntimeError, TypeError):  # XLA: "No such compile option" / a rejected value; TypeError: a jax
        return False  # without `jax.jit(compiler_options=...)`
    return True


def compiler_options(role: Role, backend: str | None = None) -> dict[str, Any] | None:
    """The XLA options of a program of this role on `backend` (default: JAX's default backend)."""
    if role not in _CPU_OPTIONS:
        raise ValueError(f"role must be one of {sorted(_CPU_OPTIONS)}, got {role!r}")
    if (backend or jax.default_backend()) != "cpu":
        return None
    options = _CPU_OPTIONS[role]
    if _accepted(tuple(options.items())):  # one probe for the lot; one per option only if it fails
        return dict(options)
    return {k: v for k, v in options.items() if _accepted(((k, v),))} or None


class _Deferred:
    """A jit wrapper built on first call, when the backend (and so the options) is known: importing
    jaxrnn must not start JAX's backends."""

    def __init__(self, make: Callable[[dict[str, Any] | None], Callable], role: Role, fun: Callable):
        self._make = make
        self._role: Role = role
        self._built: dict[str, Callable] = {}  # backend -> jitted function
        functools.update_wrapper(self, fun)

    def _jitted(self) -> Callable:
        backend = jax.default_backend()
        if backend not in self._built:
            self._built[backend] = self._make(compiler_options(self._role, backend))
        return self._built[backend]

    def __call__(self, *args, **kwargs):
        return self._jitted()(*args, **kwargs)

    def lower(self, *args, **kwargs):
        return self._jitted().lower(*args, **kwargs)  # pyright: ignore[reportAttributeAccessIssue]


def _with_options(jitkwargs: dict, opts: dict[str, Any] | None) -> dict:
    """`compiler_options` only when there are some (older jax versions do not take the argument at all)."""
    return {**jitkwargs, "compiler_options": opts} if opts else dict(jitkwargs)


def filter_jit(fun: Callable | None = None, *, role: Role = HOT, **jitkwargs) -> Any:
    """`equinox.filter_jit` with the role's compiler options. Use as `@filter_jit` or `@filter_jit(role=ELEMENTWISE)`."""
    if fun is None:
        return lambda f: filter_jit(f, role=role, **jitkwargs)
    make = lambda opts: eqx.filter_jit(fun, **_with_options(jitkwargs, opts))
    return _Deferred(make, role, fun)


def jit(fun: Callable | None = None, *, role: Role = HOT, **jitkwargs) -> Any:
    """`jax.jit` with the role's compiler options. Use as `@jit`, `@jit(static_argnums=...)`."""
    if fun is None:
        return lambda f: jit(f, role=role, **jitkwargs)
    return _Deferred(lambda opts: jax.jit(fun, **_with_options(jitkwargs, opts)), role, fun)
