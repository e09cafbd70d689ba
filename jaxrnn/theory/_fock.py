"""N -> inf finite-sigma theory: the deterministic limit of the depth-k block-Krylov reduction.

Derivation (docs/theory.md, section 4). As N -> inf with W0_ij ~ N(0, sigma^2/N) and u0, v0 independent
N(0, 1) vectors, every normalised inner product <w1(W0, W0^T) x, w2(W0, W0^T) y>/N (x, y in {u0, v0})
converges to the vacuum expectation in the free-probability model

    W0 -> c = sigma (l1 + l2^*)   on the full Fock space F(C^2) (l_i: left creation of e_i),
    u0/sqrt(N) -> Omega (x) f1,   v0/sqrt(N) -> Omega (x) f2     (two orthogonal copies of the vacuum),

since u0 and v0 are asymptotically free of W0 and orthogonal to each other. The depth-k Krylov space
becomes span{tensors of length <= k} in each copy (the words in (c, c^*) of length <= k applied to Omega
span exactly those), of dimension d = 2 (2^(k+1) - 1), with the tensor basis orthonormal.

The reduced network W = c + Q m Q^T, u = Q a, v = Q b has impulse response k(tau) = <v, e^{(W - I) tau} u>.
c only prepends a 1 or removes a leading 2, so X = span{1^n w : |w| <= k, n >= 0} (per copy) is invariant
under W and contains u: the Gramians compressed to X are those of the compressed system, and the loss and
its projected gradients are computed EXACTLY on X. We truncate the chain at n <= `tail` (the neglected
amplitude is ~ (sigma/|lambda_out|)^tail); dim X = 2 (2^(k+1) - 1 + tail 2^k).

The reduced flow is then the same Galerkin flow as at finite N (`_krylov`): dm/dt = -eta Q^T dL/dW Q,
da/dt = -eta dL/da, db/dt = -eta dL/db, started at m = 0, a = Omega_1, b = Omega_2.

Outlier. c has spectrum the closed disk |lambda| <= sigma (Brown measure of the circular element); eigenvalues
of the compressed W outside it are the outliers. The reported `outlier` is the rightmost outlier with
|lambda| > sigma or, if there is none, the bulk's rightmost point sigma (what a large-N simulation sees).
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from ..observables import outlier_eigenvalue
from ..targets import ExponentialSum
from ._result import make_result

__all__ = ["fock_space", "solve_fock"]


def fock_space(sigma: float, depth: int, tail: int):
    """(C, E): the matrix of c = sigma (l1 + l2^*) on X (both copies) and the selection E (D x d) of the
    depth-<=k tensors. Row/column order: copy 1 then copy 2; in each copy the words of length <= k first
    (the vacuum first), then the chain words 1^n w."""
    words = [()]
    for L in range(1, depth + 1):
        words += list(itertools.product((1, 2), repeat=L))
    nk = len(words)
    for L in range(depth + 1, depth + tail + 1):
        words += [(1,) * (L - depth) + w for w in itertools.product((1, 2), repeat=depth)]
    index = {w: i for i, w in enumerate(words)}
    n = len(words)
    C1 = np.zeros((n, n))
    for w, i in index.items():
        j = index.get((1,) + w)  # l1: prepend e1 (dropped beyond the tail)
        if j is not None:
            C1[j, i] += sigma
        if w and w[0] == 2:  # l2^*: remove a leading e2
            C1[index[w[1:]], i] += sigma
    C = np.zeros((2 * n, 2 * n))
    C[:n, :n] = C1
    C[n:, n:] = C1
    E = np.zeros((2 * n, 2 * nk))
    E[np.arange(nk), np.arange(nk)] = 1.0
    E[n + np.arange(nk), nk + np.arange(nk)] = 1.0
    return C, E


def solve_fock(
    target,
    sigma,
    ts,
    *,
    eta: float | ArrayLike = 1.0,
    depth=1,
    tail=12,
    rtol=1e-8,
    atol=1e-10,
    max_steps=100_000,
    threshold=1e-2,
    doublings=24,
):
    """N -> inf finite-sigma theory at Krylov depth `depth` (one cell); returns a `TheoryResult`."""
    from ._krylov import _krylov_flow

    C, E = fock_space(float(sigma), depth, tail)
    D, d = E.shape
    theta0 = np.zeros(d * d + 2 * d)
    theta0[d * d] = 1.0  # a = Omega_1
    theta0[d * d + d + d // 2] = 1.0  # b = Omega_2
    dtype = jnp.float64
    kind = target.kind  # the flow does not depend on it: one compiled program serves every kind
    target = ExponentialSum(
        *(jnp.asarray(x, dtype) for x in (target.r_re, target.r_im, target.s_re, target.s_im)), kind="sum"
    )
    # _krylov_flow uses u = sqrt(D) E a, v = sqrt(D) E b with readout 1/D: k = b^T E^T e^{(W-I)t} E a.
    ys, W, loss, ok, n = _krylov_flow(
        jnp.asarray(C, dtype),
        jnp.asarray(E, dtype),
        jnp.asarray(theta0, dtype),
        target,
        jnp.asarray(eta, dtype),
        jnp.asarray(ts, dtype),
        rtol,
        atol,
        max_steps,
        doublings,
    )
    ev = np.linalg.eigvals(np.asarray(W))
    outside = np.where(np.abs(ev) > sigma * (1 + 1e-6), ev, -np.inf)
    ev = np.concatenate([outside, np.full(ev.shape[:-1] + (1,), sigma + 0j)], -1)
    out = dict(
        loss=np.asarray(loss),
        outlier=outlier_eigenvalue(ev, kind),
        ok=np.asarray(ok),
        num_steps=np.asarray(n),
        theta=np.asarray(ys),
        dim=d,
        fock_dim=D,
    )
    return make_result(ts, out, "fock", threshold)
