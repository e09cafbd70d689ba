"""Block-Krylov (Galerkin) reduction of depth k at finite N and sigma > 0 (docs/concepts.md §6).

Basis. K_k = span of the words of length <= k in (W0, W0^T) applied to {u0, v0}; Q (N x d) is an
orthonormal basis of it, d <= 2 (2^(k+1) - 1).

Reduced flow. Restrict the parameters to the affine family

    W = W0 + Q m Q^T,   u = sqrt(N) Q a,   v = sqrt(N) Q b,      (m in R^{d x d}, a, b in R^d)

and keep the SAME loss L(W, u, v) of the full N-dimensional network. The mean-field flow is the gradient
flow of L in the metric |dW|_F^2 + |du|^2/N + |dv|^2/N (the inverse of the rates eta, eta N, eta N).
Pulled back to (m, a, b) this metric is |dm|_F^2 + |da|^2 + |db|^2 (Q has orthonormal columns), so the
reduced flow is the orthogonal projection of the full flow on the family's tangent space:

    dm/dt = -eta Q^T (dL/dW) Q,   da/dt = -eta sqrt(N) Q^T dL/du,   db/dt = -eta sqrt(N) Q^T dL/dv,

with the exact adjoint gradients of `population_loss_and_grad`. At sigma = 0 and k = 0 this is the 8-ODE.
Starting point m = 0, a = Q^T u0 / sqrt(N), b = Q^T v0 / sqrt(N) (exact: u0, v0 lie in K_k).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from ..loss import population_loss_and_grad
from ..model import LinearRNN
from ..targets import ExponentialSum
from ..observables import outlier_eigenvalue
from ._ode import integrate_gradient_flow
from ._result import make_result

__all__ = ["krylov_basis", "solve_krylov"]


def krylov_basis(W0, u0, v0, depth: int, *, rtol: float = 1e-10) -> np.ndarray:
    """Orthonormal basis (N x d) of the words of length <= depth in (W0, W0^T) applied to {u0, v0}.

    Level by level (V_{j+1} = [W0 V_j, W0^T V_j]), each new block orthogonalised twice against the basis
    so far; directions with relative norm < rtol (dependent words) are dropped.
    """
    W0, u0, v0 = (np.asarray(x, dtype=float) for x in (W0, u0, v0))
    basis = np.zeros((W0.shape[0], 0))
    level = np.stack([u0, v0], -1)
    for j in range(depth + 1):
        scale = max(np.max(np.linalg.norm(level, axis=0)), np.finfo(float).tiny)
        for col in level.T:
            x = col / scale
            for _ in range(2):
                x = x - basis @ (basis.T @ x)
            n = np.linalg.norm(x)
            if n > rtol * np.linalg.norm(col / scale) and n > 0:
                basis = np.concatenate([basis, (x / n)[:, None]], -1)
        if j < depth:
            level = np.concatenate([W0 @ level, W0.T @ level], -1)
    return basis


@functools.partial(jax.jit, static_argnames=("max_steps", "doublings"))
def _krylov_flow(W0, Q, theta0, target, eta, ts, rtol, atol, max_steps, doublings):
    N, d = Q.shape
    sq = jnp.sqrt(jnp.asarray(N, W0.dtype))

    def unpack(th):
        m = th[: d * d].reshape(d, d)
        return W0 + Q @ m @ Q.T, sq * Q @ th[d * d : d * d + d], sq * Q @ th[d * d + d :]

    def rhs(t, th, args):
        W, u, v = unpack(th)
        _, g, _ = population_loss_and_grad(LinearRNN(W, u, v), target, doublings=doublings)
        return -eta * jnp.concatenate([(Q.T @ g.W @ Q).reshape(-1), sq * Q.T @ g.u, sq * Q.T @ g.v])

    ys, ok, n = integrate_gradient_flow(rhs, theta0, ts, rtol=rtol, atol=atol, max_steps=max_steps)
    W, u, v = jax.vmap(unpack)(ys)
    loss = jax.vmap(
        lambda W, u, v: population_loss_and_grad(LinearRNN(W, u, v), target, doublings=doublings)[0]
    )(W, u, v)
    return ys, W, loss, ok, n


def solve_krylov(
    target,
    network,
    ts,
    *,
    eta: float | ArrayLike = 1.0,
    depth=0,
    rtol=1e-8,
    atol=1e-10,
    max_steps=100_000,
    threshold=1e-2,
    doublings=24,
):
    """Depth-k block-Krylov reduction for one network (W0, u0, v0); returns a `TheoryResult`.

    `outlier` is taken from the eigenvalues of the reduced model's full W = W0 + Q m Q^T (host eig), so it
    means what the simulation's does (bulk eigenvalues included). `extra` holds `ritz` (eig of Q^T W Q),
    `dim` (d) and `theta` (the reduced state). Loops over a population's leading axis.
    """

    if network.W.ndim > 2:
        cells = [
            solve_krylov(
                target,
                LinearRNN(network.W[i], network.u[i], network.v[i]),
                ts,
                eta=eta,
                depth=depth,
                rtol=rtol,
                atol=atol,
                max_steps=max_steps,
                threshold=threshold,
                doublings=doublings,
            )
            for i in range(network.W.shape[0])
        ]
        out = {k: np.stack([c[k] for c in cells]) for k in ("loss", "outlier", "ok", "num_steps")}
        return make_result(ts, out, "krylov", threshold)
    Q = krylov_basis(network.W, network.u, network.v, depth)
    N, d = Q.shape
    sq = np.sqrt(N)
    theta0 = np.concatenate(
        [np.zeros(d * d), Q.T @ np.asarray(network.u) / sq, Q.T @ np.asarray(network.v) / sq]
    )
    dtype = jnp.float64
    # float64 arrays, kind dropped (the flow does not depend on it: one compiled program for every kind)
    target = ExponentialSum(
        *(jnp.asarray(x, dtype) for x in (target.r_re, target.r_im, target.s_re, target.s_im)),
        kind=target.kind,
    )
    kind = target.kind
    target = ExponentialSum(target.r_re, target.r_im, target.s_re, target.s_im, kind="sum")
    ys, W, loss, ok, n = _krylov_flow(
        jnp.asarray(network.W, dtype),
        jnp.asarray(Q, dtype),
        jnp.asarray(theta0, dtype),
        target,
        jnp.asarray(eta, dtype),
        jnp.asarray(ts, dtype),
        rtol,
        atol,
        max_steps,
        doublings,
    )
    W = np.asarray(W)
    out = dict(
        loss=np.asarray(loss),
        outlier=outlier_eigenvalue(np.linalg.eigvals(W), kind),
        ok=np.asarray(ok),
        num_steps=np.asarray(n),
        theta=np.asarray(ys),
        dim=d,
        ritz=np.linalg.eigvals(np.einsum("ia,tij,jb->tab", Q, W, Q)),
    )
    return make_result(ts, out, "krylov", threshold)
