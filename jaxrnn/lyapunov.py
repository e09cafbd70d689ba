"""Matmul-only Lyapunov and Stein solvers (no eig, no schur: they run on CPU, GPU and TPU).

Continuous Lyapunov  A X + X A^T + Q = 0  (A Hurwitz) is mapped by the Cayley transform

    F = (pI - A)^{-1} (pI + A),     G = 2p (pI - A)^{-1} Q (pI - A)^{-T}

to the Stein equation X = F X F^T + G, which squared Smith doubling solves:

    X <- X + F X F^T,   F <- F^2       (after K steps X = sum_{i < 2^K} F^i G F^iT).

The truncation error is F^(2^K) X F^(2^K)T, so the returned `tail` = max |F^(2^K)| both bounds the
relative error and flags a non-Hurwitz A (then |F^(2^K)| grows instead of vanishing). An eigenvalue
-kappa of A maps to (p - kappa)/(p + kappa) ~ 1 - 2 kappa/p, so K ~ log2(p/kappa) + 5 doublings
reach machine precision (THEORY.md section 2).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = ["solve_lyapunov", "solve_stein", "gramians", "doublings_for", "cayley"]

DEFAULT_DOUBLINGS = 16  # enough for slowest decay rates down to ~1e-4 at shift p = 1


def doublings_for(min_decay: float, shift: float = 1.0) -> int:
    """Smith doublings that take rho(F) = 1 - 2 kappa/p below 1e-30 for kappa >= min_decay."""
    if not min_decay > 0:
        raise ValueError(f"min_decay must be > 0, got {min_decay}")
    return max(4, math.ceil(math.log2(shift / min_decay)) + 6)


def cayley(A: Float[Array, "n n"], shift: float = 1.0):
    """F = (pI - A)^{-1}(pI + A) and R = (pI - A)^{-1}, via one LU factorisation."""
    eye = jnp.eye(A.shape[-1], dtype=A.dtype)
    R = jnp.linalg.solve(shift * eye - A, eye)
    return R @ (shift * eye + A), R


def _smith(F, X_forward, X_backward, doublings):
    """X_f <- X_f + F X_f F^T and X_b <- X_b + F^T X_b F, sharing the powers of F."""

    def body(_, carry):
        F, Xf, Xb = carry
        Xf = Xf + F @ Xf @ F.T
        Xb = Xb + F.T @ Xb @ F
        return F @ F, Xf, Xb

    F, Xf, Xb = jax.lax.fori_loop(0, doublings, body, (F, X_forward, X_backward))
    return Xf, Xb, jnp.max(jnp.abs(F))


def solve_stein(F: Float[Array, "n n"], Q: Float[Array, "n n"], *, doublings: int = DEFAULT_DOUBLINGS):
    """X = F X F^T + Q for rho(F) < 1. Returns (X, tail = max|F^(2^K)|)."""
    X, _, tail = _smith(F, Q, jnp.zeros_like(Q), doublings)
    return X, tail


def solve_lyapunov(
    A: Float[Array, "n n"], Q: Float[Array, "n n"], *, doublings: int = DEFAULT_DOUBLINGS, shift: float = 1.0
):
    """X with A X + X A^T + Q = 0 for Hurwitz A. Returns (X, tail)."""
    F, R = cayley(A, shift)
    X, tail = solve_stein(F, 2 * shift * R @ Q @ R.T, doublings=doublings)
    return X, tail


def gramians(A, u, v, *, doublings: int = DEFAULT_DOUBLINGS, shift: float = 1.0):
    """Controllability P (A P + P A^T + u u^T = 0) and observability O (A^T O + O A + v v^T = 0).

    Both share the Cayley transform and its powers (F for P, F^T for O). Returns (P, O, tail).
    """
    F, R = cayley(A, shift)
    g = R @ u  # (pI - A)^{-1} u
    h = R.T @ v  # (pI - A)^{-T} v
    P, O, tail = _smith(F, 2 * shift * jnp.outer(g, g), 2 * shift * jnp.outer(h, h), doublings)
    return P, O, tail
