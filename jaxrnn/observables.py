"""Observables of training: learning times, outliers, laziness and the conserved charge.

Pure array functions (numpy on the host, or jax.numpy inside jit where noted). Simulation and theory
both report through these, so their outputs subtract.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "learning_time",
    "eigenvalue_learning_time",
    "outlier_eigenvalue",
    "operator_norm",
    "charge",
    "charge_drift",
]


def _first_crossing(t, x, threshold, log):
    """First time x(t) < threshold along the last axis, interpolated between logged points.

    Interpolation is linear in log x (log=True) or in x. NaN where x never crosses; t[0] where it
    starts below.
    """
    t = np.asarray(t, dtype=float)
    x = np.asarray(x, dtype=float)
    thr = np.broadcast_to(np.asarray(threshold, dtype=float), x.shape[:-1])
    below = x < thr[..., None]
    below &= np.isfinite(x)
    hit = below.any(-1)
    k = np.argmax(below, axis=-1)
    km1 = np.maximum(k - 1, 0)
    x0 = np.take_along_axis(x, km1[..., None], -1)[..., 0]
    x1 = np.take_along_axis(x, k[..., None], -1)[..., 0]
    t0, t1 = t[km1], t[k]
    with np.errstate(divide="ignore", invalid="ignore"):
        if log:
            frac = (np.log(thr) - np.log(x0)) / (np.log(x1) - np.log(x0))
        else:
            frac = (thr - x0) / (x1 - x0)
    frac = np.where(k == 0, 1.0, np.clip(np.nan_to_num(frac, nan=1.0), 0.0, 1.0))
    return np.where(hit, t0 + frac * (t1 - t0), np.nan)


def learning_time(t, loss, *, threshold: float = 1e-2):
    """t_learn: first time L(t) < threshold * L(0), log-interpolated between logged points (THEORY.md s8).

    `loss` has the log-time axis last (any leading axes); `t` is that axis. NaN if never reached.
    """
    loss = np.asarray(loss, dtype=float)
    return _first_crossing(t, loss, threshold * loss[..., 0], log=True)


def eigenvalue_learning_time(t, outlier, target_eigenvalue, *, tolerance: float = 1e-2):
    """First time |lambda_out(t) - lambda*| < tolerance |lambda*|, interpolated linearly in the error.

    Where lambda* = 0 (c = 1) the error is absolute.
    """
    outlier = np.asarray(outlier)
    target_eigenvalue = np.asarray(target_eigenvalue)[..., None]
    scale = np.abs(target_eigenvalue)
    err = np.abs(outlier - target_eigenvalue) / np.where(scale > 0, scale, 1.0)
    return _first_crossing(t, err, tolerance, log=False)


def outlier_eigenvalue(eigenvalues, kind: str = "integrator"):
    """The outlier from a spectrum (last axis): the eigenvalue of largest real part.

    For the oscillator, the member of the rightmost conjugate pair with Im >= 0 (so the pair is
    lambda and its conjugate). Works with numpy or jax arrays.
    """
    xp = jnp if isinstance(eigenvalues, jax.Array) else np
    ev = eigenvalues
    if kind == "oscillator":
        ev = xp.where(ev.imag >= 0, ev, ev.real - 1e30)  # drop the lower half plane
    idx = xp.argmax(ev.real, axis=-1)
    return xp.take_along_axis(eigenvalues, idx[..., None], axis=-1)[..., 0]


def operator_norm(X, iterations: int = 50):
    """Largest singular value of X (last two axes) by power iteration on X^T X: matmuls only (jax)."""
    v0 = jnp.ones(X.shape[-1], X.dtype) / jnp.sqrt(X.shape[-1])
    v0 = v0 + 1e-3 * jnp.arange(X.shape[-1], dtype=X.dtype) / X.shape[-1]  # avoid a null start

    def body(_, v):
        w = jnp.einsum("...ji,...jk,...k->...i", X, X, v)
        return w / jnp.maximum(jnp.linalg.norm(w, axis=-1, keepdims=True), jnp.finfo(X.dtype).tiny)

    v = jax.lax.fori_loop(0, iterations, body, jnp.broadcast_to(v0, X.shape[:-1]))
    return jnp.linalg.norm(jnp.einsum("...ij,...j->...i", X, v), axis=-1)


def charge(W, u, v, rates=(1.0, None, None)):
    """C = W W^T - W^T W + (rho_W/rho_u) u u^T - (rho_W/rho_v) v v^T, conserved by gradient flow.

    The loss is invariant under (W, u, v) -> (S W S^-1, S u, S^-T v); with gradient-flow rates
    (rho_W, rho_u, rho_v) the Noether charge above is conserved (THEORY.md section 3). For mean-field
    rates (eta, eta N, eta N) the weights are 1/N. `rates=(1, None, None)` means mean-field.
    """
    N = W.shape[-1]
    rW, ru, rv = rates
    ru = N if ru is None else ru
    rv = N if rv is None else rv
    WT = jnp.swapaxes(W, -1, -2)
    return W @ WT - WT @ W + (rW / ru) * u[..., :, None] * u[..., None, :] - (rW / rv) * v[..., :, None] * v[..., None, :]


def charge_drift(C_t, C_0, W, u, v, rates=(1.0, None, None)):
    """|C(t) - C(0)|_F relative to the size of C's terms, |W W^T|_F + |W^T W|_F + (|u|^2/rho + |v|^2/rho)."""
    N = W.shape[-1]
    rW, ru, rv = rates
    ru = N if ru is None else ru
    rv = N if rv is None else rv
    WT = jnp.swapaxes(W, -1, -2)
    scale = (
        jnp.linalg.norm(W @ WT, axis=(-2, -1))
        + jnp.linalg.norm(WT @ W, axis=(-2, -1))
        + (rW / ru) * jnp.sum(u**2, -1)
        + (rW / rv) * jnp.sum(v**2, -1)
    )
    return jnp.linalg.norm(C_t - C_0, axis=(-2, -1)) / scale
