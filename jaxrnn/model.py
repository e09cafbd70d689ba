"""The canonical linear RNN (docs/concepts.md §1) and populations of them.

    dh/dt = -h + W h + u x(t),      y(t) = s_N v.h(t),

with readout scale s_N = 1/N (mean-field, the default) or 1/sqrt(N) ("standard"). The impulse
response is k(tau) = s_N v^T expm((W - I) tau) u.

A population is one `LinearRNN` whose arrays carry a leading network axis. Network i of a
population drawn from `seed` uses the key `fold_in(key(seed), i)`, so it is the same network
whatever the population's size or order.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Key, PRNGKeyArray

from ._compile import filter_jit, jit

__all__ = ["LinearRNN", "init_network", "init_population", "network_key", "network_keys", "SCALINGS"]

# readout scale s_N and the gradient-flow rate multipliers (W, u, v) of each scaling.
SCALINGS = ("mean_field", "standard")


class LinearRNN(eqx.Module):
    """A linear RNN (W, u, v), or a population of them (leading axis on every array).

    **Fields:**
    - `W`: recurrent weights, shape (N, N).
    - `u`: input weights, shape (N,).
    - `v`: readout weights, shape (N,).
    - `scaling`: "mean_field" (readout 1/N, rates eta, eta N, eta N) or "standard"
      (readout 1/sqrt(N), all rates eta). Static.
    """

    W: Float[Array, "... N N"]
    u: Float[Array, "... N"]
    v: Float[Array, "... N"]
    scaling: str = eqx.field(static=True, default="mean_field")

    def __check_init__(self):
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}, got {self.scaling!r}")
        if (
            self.W.shape[-1] != self.W.shape[-2]
            or self.u.shape[-1] != self.W.shape[-1]
            or self.v.shape != self.u.shape
        ):
            raise ValueError(f"inconsistent shapes W {self.W.shape}, u {self.u.shape}, v {self.v.shape}")

    @property
    def N(self) -> int:
        return self.W.shape[-1]

    @property
    def readout_scale(self) -> float:
        return 1.0 / self.N if self.scaling == "mean_field" else 1.0 / float(np.sqrt(self.N))

    @property
    def rates(self) -> tuple[float, float, float]:
        """Multipliers of eta for (W, u, v) in the gradient flow."""
        n = float(self.N)
        return (1.0, n, n) if self.scaling == "mean_field" else (1.0, 1.0, 1.0)

    def impulse_response(self, tau):
        """k(tau) = s_N v^T expm((W - I) tau) u for an array of lags (one network)."""
        A = self.W - jnp.eye(self.N, dtype=self.W.dtype)
        expm = jax.vmap(lambda t: jax.scipy.linalg.expm(A * t))(jnp.atleast_1d(tau))
        return self.readout_scale * jnp.einsum("i,tij,j->t", self.v, expm, self.u)


def network_key(seed: int | jax.Array, index) -> PRNGKeyArray:
    """Key of network `index` of the population drawn from `seed`."""
    return jax.random.fold_in(jax.random.key(seed), index)


def network_keys(seed, indices, salt: int | None = None) -> Key[Array, " M"]:
    """Keys of networks `indices` (an int M means 0..M-1); `seed` is one seed or one per network. With
    `salt`, each key is `fold_in(key, salt)` instead (a stream derived from the network's, e.g. its noise)."""
    indices = np.arange(indices) if np.ndim(indices) == 0 else np.asarray(indices)
    return _network_keys(np.asarray(seed), indices, salt)


def _keys(seed, indices):
    seeds = jnp.broadcast_to(jnp.asarray(seed).astype(jnp.uint32), indices.shape)
    return jax.vmap(network_key)(seeds, jnp.asarray(indices).astype(jnp.uint32))


@jit(static_argnums=2)
def _network_keys(seed, indices, salt):
    keys = _keys(seed, indices)
    return keys if salt is None else jax.vmap(lambda k: jax.random.fold_in(k, salt))(keys)


def init_network(
    N: int,
    sigma,
    key: PRNGKeyArray,
    *,
    rescale_v: bool = False,
    scaling: str = "mean_field",
    dtype=None,
) -> LinearRNN:
    """Draw W0_ij ~ N(0, sigma^2/N), u_i, v_i ~ N(0, 1).

    W0 = sigma * Z / sqrt(N) with Z independent of sigma, so one key gives the same Z at every sigma.
    With `rescale_v`, v is rescaled so |v| = |u| (the symmetric case of docs/concepts.md §5).
    """
    dtype = dtype or jnp.result_type(float)
    kW, ku, kv = jax.random.split(key, 3)
    W = jnp.asarray(sigma, dtype) * jax.random.normal(kW, (N, N), dtype) / float(np.sqrt(N))
    u = jax.random.normal(ku, (N,), dtype)
    v = jax.random.normal(kv, (N,), dtype)
    if rescale_v:
        v = v * (jnp.linalg.norm(u) / jnp.linalg.norm(v))
    return LinearRNN(W, u, v, scaling=scaling)


def init_population(
    N: int,
    sigma,
    seed,
    indices,
    *,
    rescale_v: bool = False,
    scaling: str = "mean_field",
    dtype=None,
) -> LinearRNN:
    """A population: network `indices[i]` of `seed`, with initial scale `sigma` (scalar or per network).

    `indices` may be an int M (networks 0..M-1) or an array of network indices; `seed` one seed or
    one per network (a sweep's networks come from several seeds).
    """
    if isinstance(N, bool) or not isinstance(N, (int, np.integer)) or N < 1:
        raise ValueError(f"N must be a positive integer, got {N!r}")
    indices = np.arange(indices) if np.ndim(indices) == 0 else np.asarray(indices)
    sig = np.asarray(sigma, dtype=float)
    if np.any(~np.isfinite(sig)) or np.any(sig < 0):
        raise ValueError(f"sigma must be finite and >= 0, got {sigma}")
    dtype = jnp.dtype(dtype or jnp.result_type(float))
    sig = np.broadcast_to(sig, indices.shape)
    return _draw_population(N, sig, np.asarray(seed), indices, rescale_v, scaling, dtype)


@filter_jit
def _draw_population(N, sigma, seed, indices, rescale_v, scaling, dtype):
    """`init_population`'s draws as one compiled set-up program (eagerly, the key derivation and the three
    draws compiled ~8 programs: ~3 s of a small sweep's start on one core)."""
    keys = _keys(seed, indices)
    make = lambda k, s: init_network(N, s, k, rescale_v=rescale_v, scaling=scaling, dtype=dtype)
    return jax.vmap(make)(keys, sigma.astype(dtype))
