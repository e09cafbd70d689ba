"""Matmul-only Lyapunov and Stein solvers (no eig, no schur: they run on CPU, GPU and TPU).

Continuous Lyapunov  A X + X A^T + Q = 0  (A Hurwitz) is mapped by the Cayley transform

    F = (pI - A)^{-1} (pI + A),     G = 2p (pI - A)^{-1} Q (pI - A)^{-T}

to the Stein equation X = F X F^T + G, which squared Smith doubling solves:

    X <- X + F X F^T,   F <- F^2       (after K steps X = sum_{i < 2^K} F^i G F^iT).

The truncation error is F^(2^K) X F^(2^K)T, so the returned `tail` = max |F^(2^K)| both bounds the
relative error and flags a non-Hurwitz A (then |F^(2^K)| grows instead of vanishing). An eigenvalue
-kappa of A maps to (p - kappa)/(p + kappa) ~ 1 - 2 kappa/p, so K ~ log2(p/kappa) + 5 doublings
reach machine precision (docs/concepts.md §2).

For large N with a single input vector, `low_rank_gramians` gives P ~ Z_P Z_P^T and O ~ Z_O Z_O^T by
low-rank ADI (Li-White) with a few cyclic real shifts: one inverse per shift and O(N^2) per ADI step
instead of O(N^3) per doubling (one batched solve, which runs on GPU/TPU; no eig or schur).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from jaxtyping import Array, Float

__all__ = [
    "solve_lyapunov",
    "solve_stein",
    "gramians",
    "gramians_adaptive",
    "cayley_shift",
    "cayley_shift_and_subspace",
    "low_rank_gramians",
    "doublings_for",
    "cayley",
    "cayley_resolvent",
    "INVERSES",
]

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


def cayley_shift(W: Float[Array, "n n"], *, iterations: int = 6, p_min: float = 0.05):
    """A Cayley shift p for A = W - I from a cheap model of W's spectrum (matvecs only): see
    `cayley_shift_and_subspace`, which also returns the dominant subspace it found."""
    return cayley_shift_and_subspace(W, iterations=iterations, p_min=p_min)[0]


def cayley_shift_and_subspace(W: Float[Array, "n n"], *, iterations: int = 6, p_min: float = 0.05):
    """A Cayley shift p for A = W - I from a cheap model of W's spectrum (matvecs only), and the dominant
    2-dimensional subspace of W it came from: (p, (Q, H)), Q orthonormal (n, 2), H = Q^T W Q.

    Model: a bulk disk |z| <= r_b plus the dominant pair theta, conj(theta) of W (Ritz values of a
    2-block power iteration started from fixed vectors), with r_b^2 = max(|W|_F^2 - 2|theta|^2, 0)/n
    (circular law: an iid matrix has |W|_F^2 ~ n r_b^2). An eigenvalue z of W is damped per Smith
    term by |p - 1 + z| / |p + 1 - z|; p minimises the worst of the outlier and the rightmost and
    topmost bulk points over a geometric grid in [p_min, 2]. Only a heuristic: the adaptive doubling
    (`gramians_adaptive`) stops on the observed |F^(2^k)|, whatever p is.
    """
    n = W.shape[-1]
    dtype = W.dtype
    tiny = jnp.finfo(dtype).tiny

    def orth(a, b):
        a = a * jax.lax.rsqrt(jnp.maximum(a @ a, tiny))
        b = b - (a @ b) * a
        return a, b * jax.lax.rsqrt(jnp.maximum(b @ b, tiny))

    # the block's two columns kept as vectors: W a and W b are matrix-vector products, which XLA's CPU
    # backend runs in about half the time of one n x 2 product (at n = 128); orthonormalised after every
    # second product (the span, and so the Ritz values, are those of W^k Q either way)
    def power(_, ab):
        a, b = ab
        return orth(W @ (W @ a), W @ (W @ b))

    start = orth(jnp.ones(n, dtype), jnp.cos(2.399963 * jnp.arange(n, dtype=dtype)))  # fixed vectors
    a, b = jax.lax.fori_loop(0, iterations // 2, power, start)
    if iterations % 2:
        a, b = orth(W @ a, W @ b)
    Wa, Wb = W @ a, W @ b
    Q = jnp.stack([a, b], -1)
    H = jnp.stack([jnp.stack([a @ Wa, a @ Wb]), jnp.stack([b @ Wa, b @ Wb])])
    half_tr, det = 0.5 * (H[0, 0] + H[1, 1]), H[0, 0] * H[1, 1] - H[0, 1] * H[1, 0]
    disc = half_tr**2 - det
    # theta = half_tr + sqrt(disc), the Ritz value of larger real part (or Im >= 0), in real arithmetic:
    # XLA expands complex sqrt and abs into long op sequences (compiled alone, M = 512, N = 64, one core:
    # 0.35 s with them, 0.29 s without)
    root = jnp.sqrt(jnp.abs(disc))
    theta_re = half_tr + jnp.where(disc >= 0, root, 0)
    theta_im = jnp.where(disc >= 0, 0, root)
    r_b = jnp.sqrt(jnp.maximum(jnp.sum(W * W) - 2 * (theta_re**2 + theta_im**2), 0) / n)
    grid = jnp.asarray(p_min, dtype) * (2.0 / p_min) ** jnp.linspace(0, 1, 24, dtype=dtype)
    zero = jnp.zeros((), dtype)
    pts_re = jnp.stack([theta_re, r_b, zero, -r_b])[None, :]  # outlier, bulk right, top, left
    pts_im = jnp.stack([theta_im, zero, r_b, zero])[None, :]
    g = grid[:, None]
    # |p - 1 + z| / |p + 1 - z| for each grid shift p (rows) and model point z (columns)
    damp = jnp.sqrt(((g - 1 + pts_re) ** 2 + pts_im**2) / ((g + 1 - pts_re) ** 2 + pts_im**2))
    worst = jnp.max(jnp.where(jnp.isfinite(damp), damp, jnp.inf), axis=1)
    return grid[jnp.argmin(worst)], (Q, H)


INVERSES = ("lu", "neumann")  # how `cayley_resolvent` inverts pI - A
NEUMANN_MAX_SQUARINGS = 3


def cayley_resolvent(
    A: Float[Array, "n n"], shift, inverse: str = "lu", subspace=None
) -> Float[Array, "n n"]:
    """R = (pI - A)^{-1}, by one LU (`inverse="lu"`) or, matmuls only, by the Neumann product.

    With B = (A + I)/(p + 1) (= W/(p + 1) for A = W - I), pI - A = (p + 1)(I - B) and
        (I - B)^{-1} = (I + B)(I + B^2)(I + B^4) ...,   X_k = sum_{j < 2^(k+1)} B^j,
    whose residual is exactly I - (I - B) X_k = B^(2^(k+1)), of Frobenius norm <= n_k = |B^(2^k)|_F^2.
    Each factor costs one squaring and one product; the product stops once n_k <= sqrt(n) eps. At the
    start of learning (bulk radius sigma ~ 0.1, shift p ~ 1, |B^2|_F^2 ~ 1e-3) that is k = 2 in float32
    (k = 3 in float64): four n^3-products, against an LU and two triangular solves that run ~5x slower
    per flop on a CPU core at n = 128. When it cannot get there within NEUMANN_MAX_SQUARINGS squarings
    (an outlier near 1 with a small shift), judged from the decay so far (n_(k+j) ~ n_k r^(2^(j+1) - 2)
    with r = n_k / n_(k-1), exact for one dominant eigenvalue), it stops early and the LU runs after all
    (`lax.cond`: a real branch when this runs for one network at a time, both branches under `vmap`, so
    use "lu" there). The returned R's residual is bounded either way.

    `subspace` = (Q, H) (Q orthonormal (n, k), H = Q^T W Q, e.g. from `cayley_shift_and_subspace`): the
    product starts from X_0 = I + Q S Q^T, S = (I - H/(p + 1))^{-1} - I, the inverse on span(Q) if it is
    invariant, and runs the same iteration X <- X (I + E), E <- E^2 on the exact residual
        E_0 = I - (I - B) X_0 = B - Q S Q^T + (B Q) S Q^T        (O(n^2): B Q is n x k).
    When W Q = Q H, E_0 = B - Q H Q^T/(p + 1) vanishes on span(Q) and its powers decay at the rate of the
    rest of the spectrum: a learned outlier near 1 no longer stalls the product (it converges in as many
    squarings as at the start of learning, where the LU ran before). Where span(Q) is not invariant the
    identity still holds, so the residual bound and the fallback are unchanged. For a 2-dimensional span the
    start is taken only where it is predicted to save a squaring (`_subspace_start_pays`: an outlier clear
    of the bulk); elsewhere the product starts from X_0 = I as without `subspace`.
    """
    return _cayley_resolvent_counted(A, shift, inverse, subspace)[0]


def _inverse_small(M):
    """M^{-1} for a k x k M: in closed form for k = 2 (no LAPACK call in the step), else by `inv`. A singular
    M gives non-finite entries, which make the Neumann product fall back to the LU."""
    if M.shape[-1] != 2:
        return jnp.linalg.inv(M)
    det = M[0, 0] * M[1, 1] - M[0, 1] * M[1, 0]
    return jnp.stack([jnp.stack([M[1, 1], -M[0, 1]]), jnp.stack([-M[1, 0], M[0, 0]])]) / det


def _predicted_squarings(log_rho2, log_target):
    """Squarings k of the Neumann product after which rho^(2^(k+1)) <= target, from log rho^2 and
    log target (a large k for rho >= 1)."""
    ratio = 2 * log_target / jnp.minimum(log_rho2, -1e-30)
    return jnp.ceil(jnp.log2(jnp.maximum(ratio, 1.0)))


def _subspace_start_pays(Hb, log_b, log_tol, n: int):
    """Whether starting the Neumann product on B's dominant subspace is predicted to save a squaring.

    Hb = Q^T B Q (2 x 2) holds B's dominant Ritz pair theta_1, theta_2, and |B|_F^2 = exp(log_b), so the rest
    of B's spectrum, its bulk, has radius r with n r^2 ~ |B|_F^2 - |theta_1|^2 - |theta_2|^2 (as in
    `cayley_shift_and_subspace`). The plain product's residual |B^(2^k)|_F^2 decays like the larger of
    |theta_1|^(2^(k+1)) and n r^(2^(k+1)), the subspace start's like the second alone: it pays where an
    outlier stands clear of the bulk (a learned network) and not where none does (the start of learning,
    where it would cost ~10% of a step for nothing). The product stops at log_tol either way."""
    half_tr, det = 0.5 * (Hb[0, 0] + Hb[1, 1]), Hb[0, 0] * Hb[1, 1] - Hb[0, 1] * Hb[1, 0]
    disc = half_tr**2 - det
    top2 = jnp.where(disc >= 0, (jnp.abs(half_tr) + jnp.sqrt(jnp.abs(disc))) ** 2, det)  # |theta_1|^2
    pair2 = jnp.where(disc >= 0, 2 * (half_tr**2 + disc), 2 * det)  # |theta_1|^2 + |theta_2|^2
    tiny = float(np.finfo(np.dtype(Hb.dtype)).tiny)
    log_bulk2 = jnp.log(jnp.maximum(jnp.exp(log_b) - pair2, tiny) / n)
    log_top2 = jnp.log(jnp.maximum(top2, tiny))
    return _predicted_squarings(log_top2, log_tol) > _predicted_squarings(log_bulk2, log_tol - math.log(n))


def _cayley_resolvent_counted(A, shift, inverse: str, subspace=None):
    """`cayley_resolvent`, plus the Neumann squarings done and whether the LU ran (for flop counts)."""
    n = A.shape[-1]
    dtype = A.dtype
    eye = jnp.eye(n, dtype=dtype)
    p = jnp.asarray(shift, dtype)
    lu = lambda: jnp.linalg.inv(p * eye - A)
    if inverse == "lu":
        return lu(), jnp.asarray(0), jnp.asarray(True)
    if inverse != "neumann":
        raise ValueError(f"inverse must be one of {INVERSES}, got {inverse!r}")
    log_tol = 0.5 * math.log(n * float(np.finfo(np.dtype(dtype)).eps) ** 2)  # n_k <= sqrt(n) eps
    tiny = float(np.finfo(np.dtype(dtype)).tiny)
    B = (A + eye) / (1 + p)

    def log_norm2(Bk):
        return jnp.log(jnp.maximum(jnp.sum(Bk * Bk), tiny))

    def cond(carry):
        k, _, _, log_n, hopeful = carry
        return (k < NEUMANN_MAX_SQUARINGS) & (log_n > log_tol) & hopeful

    def body(carry):
        k, Bk, X, log_n, _ = carry
        Bk = Bk @ Bk
        log_next = log_norm2(Bk)
        remaining = NEUMANN_MAX_SQUARINGS - (k + 1)
        predicted = log_next + (2.0 ** (remaining + 1) - 2) * (log_next - log_n)
        return k + 1, Bk, X + X @ Bk, log_next, predicted <= log_tol

    def plain_start():  # X_0 = I: X = I + B after the first factor, residual E^2
        return B, eye + B, log_b

    def subspace_start():  # X_0 = I + Q S Q^T and the exact E_0 = I - (I - B) X_0; X = X_0 (I + E_0)
        assert subspace is not None
        Q, H = subspace
        eye_k = jnp.eye(H.shape[-1], dtype=dtype)
        S = _inverse_small(eye_k - H / (1 + p)) - eye_k
        U, V = B @ Q - Q, Q @ S.T  # E_0 = B + U V^T
        E = B + U @ V.T
        QtE = Q.T @ B + (Q.T @ U) @ V.T  # Q^T E_0, (k, n)
        X = eye + E + (Q @ S) @ (Q.T + QtE)  # X_0 (I + E_0) = I + E_0 + Q S (Q^T + Q^T E_0)
        return E, X, log_norm2(E)

    log_b = log_norm2(B)
    if subspace is None:
        E, X, log_e = plain_start()
    elif subspace[1].shape[-1] != 2:
        E, X, log_e = subspace_start()
    else:  # a real branch one network at a time (the only layout that runs the Neumann product)
        pays = _subspace_start_pays(subspace[1] / (1 + p), log_b, log_tol, n)
        E, X, log_e = jax.lax.cond(pays, subspace_start, plain_start)
    init = (jnp.asarray(0), E, X, log_e, jnp.asarray(True))
    k, _, X, log_n, _ = jax.lax.while_loop(cond, body, init)
    converged = log_n <= log_tol
    # The branches return R's entries as a vector. LAPACK's inverse is column-major, and a matrix-valued
    # `cond` took that layout: the product's R was transposed into it and every use of R read it strided
    # (~7% of a step at N = 128). A vector has one layout, so only the LU branch pays for a transpose. The
    # product's branch returns X itself (a free bitcast) and its scale: a flattening fusion runs as a
    # scalar loop in XLA's classic CPU emitters (`_compile.HOT`), 7x slower than the 2-d one outside.
    flat, scale = jax.lax.cond(
        converged, lambda: (X.reshape(-1), 1 / (1 + p)), lambda: (lu().reshape(-1), jnp.ones((), dtype))
    )
    return flat.reshape(n, n) * scale, k, ~converged


def gramians_adaptive(
    A: Float[Array, "n n"],
    u: Float[Array, " n"],
    v: Float[Array, " n"],
    *,
    max_doublings: int = DEFAULT_DOUBLINGS,
    shift: float | ArrayLike = 1.0,
    observability: bool = True,
    poles=None,
    factored: int | None = None,
    tol: float | None = None,
    inverse: str = "lu",
    subspace=None,
) -> tuple[Any, ...]:  # (P, O, tail, K) or, with `poles`, (P, O, tail, K, x, y)
    """`gramians` with the number of doublings chosen on the fly: same P, O to the dtype's precision.

    F = (pI - A)^{-1}(pI + A) = 2p R - I with R = (pI - A)^{-1} from `cayley_resolvent` (`inverse`: one
    LU, the step's only factorisation, or the matmul-only Neumann product with LU fallback, started on the
    dominant `subspace` (Q, H) of W = A + I when given).
    The Stein sums P = sum_i F^i G F^iT, G = 2p g g^T (g = R u), start rank one, so the first `factored`
    (default min(4, floor(log2 n) - 1), at least 1) doublings run on factors, Z <- [Z, F^(2^k) Z]
    (in a zero-padded n x 2^factored buffer: O(n^2 2^factored) instead of 4 n^3 per doubling; O's factor
    uses F^T and h = R^T v), and only F itself is squared (one n^3 product against five for a dense
    doubling). Dense doublings X <- X + F X F^T, F <- F^2 then continue. Both phases are `while_loop`s
    that run while |F^(2^k)|_F^2 > tol^2 (default tol^2 = eps of the dtype) and k < `max_doublings`
    (so a benign spectrum stops after one or two squarings): the truncation error F^(2^K) X F^(2^K)T
    is then below eps |X|_2. P and O share every power of F. `shift` is a number or a traced scalar (e.g.
    `cayley_shift(A + I)`).

    `poles` (shape (J,), real or complex with Re s > 0): also the resolvents x_j = (s_j I - A)^{-1} u,
    y_j = (s_j I - A)^{-T} v from the same powers of F, with no further factorisation. With
    A = p (F - I)(F + I)^{-1} and F + I = 2p R,
        (sI - A)^{-1} = 2p/(s + p) (I - beta F)^{-1} R,   beta = (p - s)/(p + s), |beta| < 1,
    and (I - beta F)^{-1} = prod_k (I + beta^(2^k) F^(2^k)): one matvec per doubling, plus one with F^(2^K)
    so the truncation (beta F)^(2^(K+1)) is below |F^(2^K)|^2 <= eps as well.

    Returns (P, O, tail, doublings), plus (x, y) of shape (J, n) with `poles` (y None without
    `observability`): O is None without `observability`; tail = max|F^(2^K)| as in `gramians`
    (<= sqrt(eps) once converged; O(1) or larger flags a non-Hurwitz A, which runs to `max_doublings`);
    `doublings` = K, the number used (an int32 scalar).
    """
    n = A.shape[-1]
    dtype = A.dtype
    tol2 = float(np.finfo(np.dtype(dtype)).eps) if tol is None else float(tol) ** 2
    eye = jnp.eye(n, dtype=dtype)
    p = jnp.asarray(shift, dtype)
    R = cayley_resolvent(A, p, inverse, subspace)
    F = 2 * p * R - eye
    g, h = R @ u, v @ R  # (pI - A)^{-1} u, (pI - A)^{-T} v
    scale = jnp.sqrt(2 * p)
    if poles is None:
        poles = jnp.zeros((0,), dtype)
    rdtype = jnp.result_type(dtype, poles.dtype)
    s = poles.astype(rdtype)
    beta = (p - s) / (p + s)
    zx = jnp.broadcast_to(g.astype(rdtype), s.shape + (n,))
    zy = jnp.broadcast_to(h.astype(rdtype), s.shape + (n,))

    def resolvent_factor(F, zx, zy, beta):  # z <- (I + beta^(2^k) F^(2^k)) z, z y <- ... F^T
        # F z as (F z^T)^T and z_y F (z_y a row): no product with F^T, which XLA would copy F to form
        zx = zx + beta[:, None] * (F.astype(rdtype) @ zx.T).T
        zy = zy + beta[:, None] * (zy @ F.astype(rdtype)) if observability else zy
        return zx, zy, beta * beta

    if factored is None:
        factored = min(4, max(1, int(math.log2(n)) - 1))
    k0 = min(int(factored), int(max_doublings))
    width = 2**k0
    Zp = jnp.zeros((n, width), dtype).at[:, 0].set(scale * g)
    ZoT = jnp.zeros((width, n), dtype).at[0].set(scale * h)  # O's factor, transposed: rows grow by Z^T F

    def converged(k, F2):
        return (k >= max_doublings) | (F2 <= tol2)

    # both loops carry F2 = |F^(2^k)|_F^2 with F, so the stopping test does not read F again
    def factored_body(carry):  # columns [0, 2^k) of Z are filled: append F^(2^k) Z as [2^k, 2^(k+1))
        k, F, F2, Zp, ZoT, zx, zy, beta = carry
        # F Z has its columns [0, 2^k) filled and the rest zero, so rolling it by 2^k puts them at
        # [2^k, 2^(k+1)) and wraps only zeros (2^(k+1) <= width): a slice copy, not a width^2 product
        step = jnp.left_shift(1, k)
        Zp = Zp + jnp.roll(F @ Zp, step, axis=1)
        if observability:
            ZoT = ZoT + jnp.roll(ZoT @ F, step, axis=0)
        zx, zy, beta = resolvent_factor(F, zx, zy, beta)
        F = F @ F
        return k + 1, F, jnp.sum(F * F), Zp, ZoT, zx, zy, beta

    init = (jnp.asarray(0, jnp.int32), F, jnp.sum(F * F), Zp, ZoT, zx, zy, beta)
    k, F, F2, Zp, ZoT, zx, zy, beta = jax.lax.while_loop(
        lambda c: (c[0] < k0) & ~converged(c[0], c[2]), factored_body, init
    )
    P = Zp @ Zp.T
    if observability:  # O = Zo Zo^T after an explicit n x 2^k0 transpose: XLA's CPU backend runs
        # ZoT^T ZoT (both operands contracted on their rows) as its own loop, 18 us at N = 128 in a trace,
        # ~1/3 the rate of its matmul library (YNNPACK), which takes Zo Zo^T
        Zo = jax.lax.optimization_barrier(ZoT.T)
        O = Zo @ Zo.T
    else:
        O = jnp.zeros((), dtype)

    def cond(carry):
        k, F2 = carry[0], carry[2]
        return (k < max_doublings) & (F2 > tol2)

    def body(carry):
        k, F, _, P, O, zx, zy, beta = carry
        P = P + F @ P @ F.T
        if observability:
            O = O + F.T @ O @ F
        zx, zy, beta = resolvent_factor(F, zx, zy, beta)
        F = F @ F
        return k + 1, F, jnp.sum(F * F), P, O, zx, zy, beta

    k, F, _, P, O, zx, zy, beta = jax.lax.while_loop(cond, body, (k, F, F2, P, O, zx, zy, beta))
    out = (P, (O if observability else None), jnp.max(jnp.abs(F)), k)
    if poles.shape[0] == 0:
        return out
    zx, zy, _ = resolvent_factor(F, zx, zy, beta)
    c = (2 * p / (s + p))[:, None]
    return out + (c * zx, (c * zy) if observability else None)


def _adi_factor(R, shifts, b, *, transpose: bool, max_steps: int, tol: float):
    """Low-rank ADI factor of X with A X + X A^T + b b^T = 0 (or, `transpose`, A^T X + X A + b b^T = 0).

    With R_k = (A - p_k I)^{-1} (given, cycling through the m real shifts p_k > 0):
        V_1 = sqrt(2 p_1) R_1 b,     V_{k+1} = sqrt(p_{k+1}/p_k) [V_k + (p_k + p_{k+1}) R_{k+1} V_k],
    and X = sum_k V_k V_k^T. One shift gives V_{k+1} = F V_k with F = R (A + pI), the Cayley factor:
    an eigenvalue lambda of A is damped by |lambda + p| / |lambda - p| per step. Stops once
    |V_k| <= tol |Z|_F. Returns (Z of shape (n, max_steps), zero beyond the steps taken, and
    tail = |V_next| / |Z|_F, which stays O(1) or grows when A is not Hurwitz).
    """
    m = shifts.shape[0]
    n = b.shape[0]
    apply = (lambda k, x: x @ R[k % m]) if transpose else (lambda k, x: R[k % m] @ x)
    V0 = jnp.sqrt(2 * shifts[0]) * apply(0, b)
    Z0 = jnp.zeros((n, max_steps), b.dtype)

    def cond(carry):
        k, V, _, total = carry
        return (k < max_steps) & ~(V @ V <= tol**2 * total)

    def body(carry):
        k, V, Z, total = carry
        Z = Z.at[:, k].set(V)
        total = total + V @ V
        p, q = shifts[k % m], shifts[(k + 1) % m]
        V = jnp.sqrt(q / p) * (V + (p + q) * apply(k + 1, V))
        return k + 1, V, Z, total

    _, V, Z, total = jax.lax.while_loop(cond, body, (jnp.asarray(0), V0, Z0, jnp.zeros((), b.dtype)))
    return Z, jnp.sqrt(V @ V / total)


def shifted_inverses(A: Float[Array, "n n"], shifts: Float[Array, " m"]) -> Float[Array, "m n n"]:
    """(A - p_k I)^{-1} for each shift, from one batched solve (a single LAPACK/cuSolver call)."""
    eye = jnp.eye(A.shape[-1], dtype=A.dtype)
    mats = A[None] - shifts[:, None, None] * eye[None]
    return jnp.linalg.solve(mats, jnp.broadcast_to(eye, mats.shape))


def low_rank_gramians(
    A, u, v, shifts, *, max_steps: int = 128, tol: float | None = None, observability: bool = True
):
    """Low-rank factors Z_P, Z_O with P = Z_P Z_P^T, O = Z_O Z_O^T (see `gramians`), by ADI.

    `shifts` are real and > 0 (ADI poles at -p_k); cycling p = 1 (the bulk of W - I sits near -1) and
    p = c (where the target puts the outlier) damps both by a factor <= 0.3 per cycle for c = 0.1,
    sigma <= 0.5. `tol` defaults to sqrt(eps)/10 of the dtype (relative error of P ~ tol^2). The
    shifted inverses come from one batched solve; the ADI steps are matrix-vector products.
    Returns (Z_P, Z_O, R, tail) with R the stacked (A - p_k I)^{-1} (reusable for resolvents at the
    shifts) and tail = max of the two chains' |V_next| / |Z|_F: <= tol when both converged. Without
    `observability` (the loss alone needs only P), Z_O is None.
    """
    if tol is None:
        tol = float(np.sqrt(np.finfo(np.dtype(A.dtype)).eps)) / 10
    R = shifted_inverses(A, shifts)
    Zp, tp = _adi_factor(R, shifts, u, transpose=False, max_steps=max_steps, tol=tol)
    if not observability:
        return Zp, None, R, tp
    Zo, to = _adi_factor(R, shifts, v, transpose=True, max_steps=max_steps, tol=tol)
    return Zp, Zo, R, jnp.maximum(tp, to)
