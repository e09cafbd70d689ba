"""Target filters k*(tau) = Re sum_j r_j exp(-s_j tau).

Every target in jaxrnn is a finite sum of (complex) exponentials, stored as real arrays so a
population of targets with different decay rates c and frequencies w is one PyTree with a leading
network axis. The leaky integrator is one real pole (r = 1, s = c); the damped oscillator
exp(-c tau) cos(w tau) = Re exp(-(c - i w) tau) is one complex pole (r = 1, s = c - i w).
See docs/concepts.md §1.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

__all__ = [
    "ExponentialSum",
    "leaky_integrator",
    "perfect_integrator",
    "damped_oscillator",
    "exponential_sum",
]


class ExponentialSum(eqx.Module):
    """Target impulse response k*(tau) = Re sum_j r_j exp(-s_j tau).

    **Fields:**
    - `r_re, r_im`: real and imaginary parts of the residues r_j, shape (J,).
    - `s_re, s_im`: real and imaginary parts of the poles s_j, shape (J,). `s_re >= 0`;
      `s_re = 0` (a perfect integrator) is allowed only with finite-horizon losses.
    - `kind`: "integrator", "oscillator" or "sum" (static): tells observables whether to track one
      real outlier or a conjugate pair.
    """

    r_re: Float[Array, " J"]
    r_im: Float[Array, " J"]
    s_re: Float[Array, " J"]
    s_im: Float[Array, " J"]
    kind: str = eqx.field(static=True, default="sum")

    def __check_init__(self):
        if self.kind not in ("integrator", "oscillator", "sum"):
            raise ValueError(f"kind must be 'integrator', 'oscillator' or 'sum', got {self.kind!r}")
        try:  # only concrete values can be checked; traced ones were checked when built
            s_re = np.asarray(self.s_re)
        except Exception:  # noqa: BLE001 - tracers (TracerArrayConversionError) and any other non-concrete leaf
            return
        if np.any(~np.isfinite(s_re)) or np.any(s_re < 0):
            raise ValueError(f"target decay rates Re s_j must be finite and >= 0, got {s_re}")

    @property
    def residues(self):
        return self.r_re + 1j * self.r_im

    @property
    def poles(self):
        return self.s_re + 1j * self.s_im

    def __call__(self, tau):
        """k*(tau), for an array of lags `tau`."""
        tau = jnp.asarray(tau)[..., None]
        r, s = self.residues, self.poles
        nd = max(tau.ndim, s.ndim)  # explicit left-padding (numpy's rank promotion, allowed under "raise")
        tau, r, s = (jnp.expand_dims(x, tuple(range(nd - x.ndim))) for x in (tau, r, s))
        return jnp.sum(jnp.real(r * jnp.exp(-s * tau)), axis=-1)

    def norm_sq(self):
        """int_0^inf k*(tau)^2 dtau = 1/2 Re sum_jl [r_j r_l/(s_j+s_l) + r_j conj(r_l)/(s_j+conj(s_l))]."""
        r, s = self.residues, self.poles
        rr = r[:, None] * r[None, :] / (s[:, None] + s[None, :])
        rc = r[:, None] * jnp.conj(r)[None, :] / (s[:, None] + jnp.conj(s)[None, :])
        return 0.5 * jnp.real(jnp.sum(rr + rc))

    def discrete_norm_sq(self, dt):
        """sum_{m>=0} k*(m dt)^2 with rho_j = exp(-s_j dt)."""
        r, rho = self.residues, jnp.exp(-self.poles * dt)
        rr = r[:, None] * r[None, :] / (1 - rho[:, None] * rho[None, :])
        rc = r[:, None] * jnp.conj(r)[None, :] / (1 - rho[:, None] * jnp.conj(rho)[None, :])
        return 0.5 * jnp.real(jnp.sum(rr + rc))

    def target_eigenvalues(self):
        """Eigenvalues of W the target asks for: lambda_j = 1 - s_j (mean-field unit time constant)."""
        return 1.0 - self.poles

    def realization(self):
        """A real state-space (S, b, c) with k*(tau) = c^T expm(S tau) b; 2 states per pole.

        For s = a + i w: S_j = [[-a, w], [-w, -a]], b_j = (1, 0), c_j = (Re r, -Im r), because the
        state z = (Re e^{-s tau}, Im e^{-s tau}) obeys z' = S_j z.
        """
        a, w = self.s_re, self.s_im
        J = a.shape[-1]
        blocks = jnp.stack([jnp.stack([-a, w], -1), jnp.stack([-w, -a], -1)], -2)  # (J, 2, 2)
        S = jnp.zeros((2 * J, 2 * J), a.dtype)
        for j in range(J):
            S = S.at[2 * j : 2 * j + 2, 2 * j : 2 * j + 2].set(blocks[j])
        b = jnp.tile(jnp.array([1.0, 0.0], a.dtype), J)
        c = jnp.stack([self.r_re, -self.r_im], -1).reshape(-1)
        return S, b, c


def _as(x, dtype):
    return jnp.atleast_1d(jnp.asarray(x, dtype=dtype))


def _check_rate(name, value, *, allow_zero=False):
    arr = np.asarray(value, dtype=float)
    bad = ~np.isfinite(arr) | (arr < 0) | ((arr == 0) & (not allow_zero))
    if np.any(bad):
        rng = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {rng}, got {value}")


def exponential_sum(residues, poles, *, dtype=None, kind="sum") -> ExponentialSum:
    """k*(tau) = Re sum_j residues[j] exp(-poles[j] tau), with Re poles[j] > 0."""
    residues = np.atleast_1d(np.asarray(residues, dtype=complex))
    poles = np.atleast_1d(np.asarray(poles, dtype=complex))
    if residues.shape != poles.shape:
        raise ValueError(
            f"residues and poles must have the same shape, got {residues.shape} and {poles.shape}"
        )
    _check_rate("Re(poles)", np.real(poles), allow_zero=True)
    dtype = dtype or jnp.result_type(float)
    return ExponentialSum(
        _as(np.real(residues), dtype),
        _as(np.imag(residues), dtype),
        _as(np.real(poles), dtype),
        _as(np.imag(poles), dtype),
        kind=kind,
    )


def leaky_integrator(c, *, dtype=None) -> ExponentialSum:
    """k*(tau) = exp(-c tau), c > 0. `c` may be an array (a population of targets: leading axis)."""
    _check_rate("c", c)
    return _single_pole(c, 0.0, dtype, "integrator")


def perfect_integrator(*, dtype=None) -> ExponentialSum:
    """k*(tau) = 1 (c = 0). Its stationary loss is infinite: train it with a finite-horizon loss."""
    return _single_pole(0.0, 0.0, dtype, "integrator")


def damped_oscillator(c, w, *, dtype=None) -> ExponentialSum:
    """k*(tau) = exp(-c tau) cos(w tau) = Re exp(-(c - i w) tau), c > 0."""
    _check_rate("c", c)
    if not np.all(np.isfinite(np.asarray(w, dtype=float))):
        raise ValueError(f"w must be finite, got {w}")
    return _single_pole(c, w, dtype, "oscillator")


def _single_pole(c, w, dtype, kind):
    dtype = jnp.dtype(dtype or jnp.result_type(float))
    # built in numpy and moved once: eager jnp ops would each compile a small program on first use
    c, w = np.broadcast_arrays(np.asarray(c, dtype), np.asarray(w, dtype))
    one, zero = np.ones_like(c)[..., None], np.zeros_like(c)[..., None]
    return ExponentialSum(*(jnp.asarray(x) for x in (one, zero, c[..., None], -w[..., None])), kind=kind)
