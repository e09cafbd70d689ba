"""Closed-form loss of a 2-state linear RNN (docs/concepts.md §5): no Lyapunov solve.

For the reduced network k(tau) = b^T expm((M - I) tau) a with M in R^{2x2}, write
T = tr M, D = det M, m0 = b.a, m1 = b^T M a. Its transfer function is

    H(s) = int_0^inf k(tau) e^{-s tau} dtau = (b1 s + b0) / (s^2 + a1 s + a0),
    a1 = 2 - T,  a0 = 1 - T + D,  b1 = m0,  b0 = m0 + m1 - T m0,

so int k^2 = (b1^2 a0 + b0^2) / (2 a0 a1) (the Hurwitz condition is a0 > 0, a1 > 0), and for
k*(tau) = Re sum_j r_j e^{-s_j tau}, int k k* = Re sum_j r_j H(s_j). The loss is

    L(M, a, b) = 1/2 [ int k^2 - 2 int k k* + int k*^2 ].
"""

from __future__ import annotations

import jax.numpy as jnp

from ..targets import ExponentialSum

__all__ = ["two_pole_loss", "two_pole_eigenvalues", "two_pole_residues"]


def _coefficients(M, a, b):
    T = M[0, 0] + M[1, 1]
    D = M[0, 0] * M[1, 1] - M[0, 1] * M[1, 0]
    m0 = b @ a
    m1 = b @ (M @ a)
    return 2.0 - T, 1.0 - T + D, m0, m0 + m1 - T * m0


def two_pole_loss(M, a, b, target: ExponentialSum):
    """L(M, a, b) = 1/2 int (b^T expm((M - I) tau) a - k*(tau))^2 dtau, in closed form (module doc)."""
    a1, a0, b1, b0 = _coefficients(M, a, b)
    kk = (b1**2 * a0 + b0**2) / (2.0 * a0 * a1)
    s = target.poles
    H = (b1 * s + b0) / (s**2 + a1 * s + a0)
    cross = jnp.real(jnp.sum(target.residues * H))
    return 0.5 * (kk - 2.0 * cross + target.norm_sq())


def two_pole_eigenvalues(M):
    """lambda_+- = T/2 +- sqrt(T^2/4 - D) (complex); lambda_+ has the larger real part, or Im >= 0."""
    T = M[..., 0, 0] + M[..., 1, 1]
    D = M[..., 0, 0] * M[..., 1, 1] - M[..., 0, 1] * M[..., 1, 0]
    root = jnp.sqrt((0.25 * T**2 - D).astype(jnp.result_type(T.dtype, jnp.complex64)))
    return 0.5 * T + root, 0.5 * T - root


def two_pole_residues(M, a, b):
    """Residues r_+- of k(tau) = sum_i r_i exp((lambda_i - 1) tau), r_i = (b.R_i)(L_i.a).

    From the partial fractions of H(s): r_+ = (b1 p_+ + b0)/(p_+ - p_-), p_i = lambda_i - 1. Infinite when
    lambda_+ = lambda_- (e.g. at a nilpotent start, M = 0).
    """
    lp, lm = two_pole_eigenvalues(M)
    T = M[..., 0, 0] + M[..., 1, 1]
    m0 = jnp.einsum("...i,...i->...", b, a)
    m1 = jnp.einsum("...i,...ij,...j->...", b, M, a)
    b1, b0 = m0, m0 + m1 - T * m0
    pp, pm = lp - 1.0, lm - 1.0
    return (b1 * pp + b0) / (pp - pm), (b1 * pm + b0) / (pm - pp)
