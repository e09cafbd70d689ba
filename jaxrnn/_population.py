"""How per-network work is laid out over a population: all networks at once, or one network at a time.

Networks train independently, so a population step is `vmap` of a one-network function. On an
accelerator the batch is the parallelism, so it stays whole. On a CPU core it is not: `vmap` of an
N x N matrix product over M networks streams all M matrices through memory for every product, and a
batched `while_loop` (the adaptive Smith doubling) runs until the slowest network is done, every other
one selecting its old value. From N = `PER_NETWORK_MIN_N` on, `over_networks` runs on CPU one network
at a time (`lax.map`): its few N x N matrices stay in the core's cache through the whole computation
(128 x 128 float32 products run at ~100 GFLOP/s from cache against ~40 GFLOP/s batched over 512
networks from memory), and its loops stop at its own count. Below that size per-network work is too
small to pay the loop's per-operation overhead and the batch is kept whole. Measured (one pinned core,
exact loss, gradient descent, M = 512, `train`'s marginal step; docs/core.md "Population layout"): one
network at a time is 1.4x faster at N = 64 and 1.5-1.6x at N = 128, 2-4x slower at N = 16.

One network at a time also lets the exact loss invert its Cayley transform by matmuls
(`lyapunov.cayley_resolvent`, "neumann"), whose LU fallback is then a real branch.

Either layout gives the same numbers to rounding (tests/test_population.py: 1e-12 in float64).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

__all__ = ["PER_NETWORK_MIN_N", "per_network", "over_networks"]

PER_NETWORK_MIN_N = 64


def per_network(N: int, backend: str | None = None) -> bool:
    """Whether `over_networks` maps one network at a time (CPU, N >= PER_NETWORK_MIN_N) or vmaps."""
    return (backend or jax.default_backend()) == "cpu" and N >= PER_NETWORK_MIN_N


def over_networks(fn: Callable[..., Any], N: int, *trees: Any) -> Any:
    """fn over the leading (network) axis of every leaf of `trees`: `vmap`, or on CPU from N =
    PER_NETWORK_MIN_N on, `lax.map` (one network at a time). Every leaf of `trees` is batched."""
    if per_network(N):
        return jax.lax.map(lambda args: fn(*args), trees)
    return jax.vmap(fn)(*trees)
