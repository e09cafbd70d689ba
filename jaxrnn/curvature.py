"""Curvature of the gradient flow, matrix-free: Lanczos on Hessian-vector products.

The flow d theta/dt = -eta R grad L(theta) (R = the scaling's per-block rates, zero on untrained blocks)
has Jacobian J = -eta R H, H the Hessian of L. In the coordinates phi = R^{-1/2} theta it reads
J = -eta S with the *symmetric* S = R^{1/2} H R^{1/2}, so its stiffness is the spectrum of eta S:
an explicit step h is stable only while h * eta * lambda_max(S) stays inside the method's real
stability interval (RK4: 2.785, Euler: 2), and a linearly implicit step needs only S's few large
eigenpairs. The products S x themselves are differences of the field (`methods._FlatField.minus_jac`);
Lanczos here is matmul-only (no eig/schur), so it runs inside jit on any backend; `eigh` of a k x k
tridiagonal matrix is the only factorisation. One network at a time (vmap over a population).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = ["lanczos_extremes"]


def lanczos_extremes(
    matvec: Callable[[Array], Array], v0: Float[Array, " n"], iterations: int
) -> tuple[Float[Array, " k"], Float[Array, "k n"]]:
    """Ritz pairs of a symmetric operator from `iterations` = k Lanczos steps started at v0.

    Full reorthogonalisation (k is small, a few to a few tens), so the Ritz values are those of the
    Rayleigh-Ritz projection on the Krylov space K_k(S, v0): the largest one is a lower bound on
    lambda_max(S) that converges fastest for an isolated top eigenvalue (error ~ (gap-ratio)^(2k)).
    An invariant subspace (breakdown, beta = 0: S of low rank, e.g. sigma = 0 networks) ends the
    recursion early: the rest of the basis is zero and the extra Ritz values are 0.

    **Returns:** Ritz values in ascending order, shape (k,), and Ritz vectors as rows, shape (k, n).
    """
    k = int(iterations)
    n = v0.shape[0]
    dtype = v0.dtype
    tiny = jnp.asarray(jnp.finfo(dtype).eps, dtype) ** 0.75
    q = v0 / jnp.maximum(jnp.linalg.norm(v0), jnp.finfo(dtype).tiny)

    def body(i, carry):
        Q, alpha, beta, q, alive = carry
        Q = Q.at[i].set(q)
        w = matvec(q)
        a = jnp.vdot(q, w)
        w = w - Q.T @ (Q @ w)  # full reorthogonalisation (twice is enough)
        w = w - Q.T @ (Q @ w)
        b = jnp.linalg.norm(w)
        scale = jnp.maximum(jnp.abs(a), jnp.max(jnp.abs(alpha)))
        ok = alive & (b > tiny * jnp.maximum(scale, jnp.finfo(dtype).tiny))
        alpha = alpha.at[i].set(jnp.where(alive, a, 0.0))
        beta = beta.at[i].set(jnp.where(ok, b, 0.0))
        q = jnp.where(ok, w / jnp.where(ok, b, 1.0), 0.0)
        return Q, alpha, beta, q, ok

    init = (jnp.zeros((k, n), dtype), jnp.zeros((k,), dtype), jnp.zeros((k,), dtype), q, jnp.asarray(True))
    Q, alpha, beta, _, _ = jax.lax.fori_loop(0, k, body, init)
    T = jnp.diag(alpha) + jnp.diag(beta[:-1], 1) + jnp.diag(beta[:-1], -1)
    theta, Y = jnp.linalg.eigh(T)
    return theta, Y.T @ Q
