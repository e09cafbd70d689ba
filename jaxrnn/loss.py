"""Losses of one network against one target (docs/concepts.md §2). Each vmaps over a population.

Write s = the readout scale (1/N mean-field), A = W - I, and k*(tau) = Re sum_j r_j exp(-s_j tau).

- `population_loss`: the exact stationary loss L = 1/2 int_0^inf (k - k*)^2 dtau
      = 1/2 [ s^2 v^T P v - 2 s Re sum_j r_j v^T x_j + int k*^2 ],   x_j = (s_j I - A)^{-1} u,
  with P the controllability Gramian. `population_loss_and_grad` adds the adjoint gradients
      dL/dW = s^2 O P - s Re sum_j r_j y_j x_j^T,  dL/du = s^2 O u - s Re sum_j r_j y_j,
      dL/dv = s^2 P v - s Re sum_j r_j x_j,        y_j = (s_j I - A)^{-T} v.
  Both take `gramian="dense"` (Smith doubling, O(N^3 log(1/c)) matmuls, autodiff-able) or
  `gramian="low_rank"` (ADI factors P = Z_P Z_P^T, O = Z_O Z_O^T with cyclic shifts {1, c_j}: one
  inverse per shift plus O(N^2) per ADI step; for real-pole targets (`kind="integrator"`) at large N).
- `finite_horizon_loss`: L_T = 1/(2T) int_0^T (T - tau)(k - k*)^2 dtau, the time-averaged loss over
  [0, T] of a network and target started at rest (finite for c = 0).
- `discrete_loss`: the exact loss of the Euler-discretised network h' = F h + sqrt(dt) u xi,
  F = I + dt A, against the exactly discretised target (rho_j = exp(-s_j dt)):
      L_dt = dt/2 [ s^2 v^T P_d v - 2 s Re sum_j r_j v^T (I - rho_j F)^{-1} u + sum_m k*(m dt)^2 ].
- `sampled_loss`: the Monte Carlo estimate of L_dt from B white-noise paths (the loss practitioners
  train on): stationary after `burn_in` steps, then averaged over `steps` steps.

Fast paths (same values to the dtype's precision; the functions above are their references):
- `population_loss_and_grad_fast` / `population_loss_fast`: `lyapunov.gramians_adaptive` (doublings
  stop once |F^(2^K)|_F^2 <= eps, the first ones on rank-one factors, the shift from
  `lyapunov.cayley_shift_and_subspace`, the resolvents from the same powers of F: one inverse per step, an
  LU or the Neumann product).
- `sampled_loss_fft`: the error response e_n computed once per network (`impulse_response_euler`,
  independent of the batch) and convolved with the noise by FFT; same noise as `sampled_loss`.
"""

from __future__ import annotations

import math
from typing import Literal, overload

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike
from jaxtyping import Array, Float, PRNGKeyArray, Scalar

from .lyapunov import (
    DEFAULT_DOUBLINGS,
    cayley_shift_and_subspace,
    doublings_for,
    gramians,
    gramians_adaptive,
    low_rank_gramians,
    solve_stein,
)
from .model import LinearRNN
from .targets import ExponentialSum

__all__ = [
    "population_loss",
    "population_loss_and_grad",
    "population_loss_fast",
    "population_loss_and_grad_fast",
    "finite_horizon_loss",
    "discrete_loss",
    "sampled_loss",
    "sampled_loss_fft",
    "impulse_response_euler",
]


def _resolvents(model: LinearRNN, target: ExponentialSum, after=None, adjoint: bool = True):
    """x_j = (s_j I - A)^{-1} u and (if `adjoint`, else None) y_j = (s_j I - A)^{-T} v, complex, (J, N).

    Both come from one batched solve, started only once `after` (e.g. the Cayley solve's output) is
    computed: jaxlib 0.10's CPU LAPACK kernels fan batches out over XLA's intra-op pool and block on
    them, so two batched solves that XLA runs concurrently can deadlock a pool of 2 threads.
    """
    cdtype = jnp.result_type(model.W.dtype, jnp.complex64)
    N = model.N
    eye = jnp.eye(N, dtype=cdtype)
    A = (model.W - jnp.eye(N, dtype=model.W.dtype)).astype(cdtype)
    poles = target.poles.astype(cdtype)
    mats = poles[:, None, None] * eye[None] - A[None]  # (J, N, N)
    J = poles.shape[0]
    rhs = jnp.broadcast_to(model.u.astype(cdtype), (J, N))
    if adjoint:
        mats = jnp.concatenate([mats, jnp.swapaxes(mats, -1, -2)])
        rhs = jnp.concatenate([rhs, jnp.broadcast_to(model.v.astype(cdtype), (J, N))])
    if after is not None:  # a data dependency (XLA drops optimization barriers before execution)
        mats = mats + (0 * after.ravel()[0]).astype(cdtype)
    xy = jnp.linalg.solve(mats, rhs[..., None])[..., 0]
    return (xy[:J], xy[J:]) if adjoint else (xy, None)


def _weighted(target: ExponentialSum, z):
    """r_j z_j for resolvents z (J, n) at the target's poles: complex, or, where z is real (the integrator's
    real poles), Re(r_j) z_j, all that Re sum_j r_j z_j ... ever reads of it."""
    r = target.residues if jnp.iscomplexobj(z) else target.r_re
    return r.astype(z.dtype)[:, None] * z


def _loss_from_terms(model: LinearRNN, target: ExponentialSum, Pv, x) -> Scalar:
    """L = 1/2 (s^2 v.P v - 2 s Re sum_j r_j v.x_j + |k*|^2), s the readout scale."""
    s = model.readout_scale
    cross = jnp.sum(jnp.real(_weighted(target, x) @ model.v.astype(x.dtype)))
    return (0.5 * (s**2 * model.v @ Pv - 2 * s * cross + target.norm_sq())).astype(model.W.dtype)


def _loss_and_grad_from_terms(model: LinearRNN, target: ExponentialSum, Pv, Ou, OP, x, y):
    """The loss and its adjoint gradient from the Gramian terms, O P = left @ right given as the pair
    `OP` = (left, right), and the resolvents x_j, y_j (module doc):
    dL/dW = s^2 O P - s Re sum_j r_j y_j x_j^T, dL/du = s^2 O u - s Re sum_j r_j y_j,
    dL/dv = s^2 P v - s Re sum_j r_j x_j.
    dL/dW is one product, [s^2 left, -s Re(r y)^T, s Im(r y)^T] @ [right; Re x; Im x] (the Im parts only
    for complex resolvents): a rank-J outer product formed apart is an n^2 loop that XLA's classic CPU
    emitters (`_compile.HOT`) run unvectorised, recomputing x and y's expressions at every entry."""
    s = model.readout_scale
    rx, ry = _weighted(target, x), _weighted(target, y)
    left, right = OP
    ls, rs = [s**2 * left, -s * jnp.real(ry).T], [right, jnp.real(x)]
    if jnp.iscomplexobj(ry) and jnp.iscomplexobj(x):
        ls.append(s * jnp.imag(ry).T)
        rs.append(jnp.imag(x))
    gW = jnp.concatenate(ls, 1) @ jnp.concatenate(rs, 0)
    gu = s**2 * Ou - s * jnp.real(jnp.sum(ry, 0))
    gv = s**2 * Pv - s * jnp.real(jnp.sum(rx, 0))
    grad = LinearRNN(
        gW.astype(model.W.dtype), gu.astype(model.u.dtype), gv.astype(model.v.dtype), scaling=model.scaling
    )
    return _loss_from_terms(model, target, Pv, x), grad


GRAMIANS = ("dense", "low_rank")


def check_gramian(gramian: str, target: ExponentialSum) -> None:
    """Raise early for an unknown `gramian` or a low-rank solve of a target with complex poles."""
    if gramian not in GRAMIANS:
        raise ValueError(f"gramian must be one of {GRAMIANS}, got {gramian!r}")
    if gramian == "low_rank" and target.kind != "integrator":
        raise ValueError(
            f"gramian='low_rank' uses real ADI shifts and needs real target poles (kind='integrator'), got "
            f"kind={target.kind!r}: complex poles -c +- iw converge at only ~1 - 2c/|s| per step; use gramian='dense'"
        )


def _gramian_terms(
    model: LinearRNN,
    target: ExponentialSum,
    gramian: str,
    doublings: int,
    shift: float,
    max_steps: int,
    need_grad: bool = True,
):
    """P v, O u, O P as a pair of factors (left, right), the resolvents x, y and the solver tail, by either
    solver (O u, O P, y: None unless `need_grad`)."""
    check_gramian(gramian, target)
    N = model.N
    A = model.W - jnp.eye(N, dtype=model.W.dtype)
    if gramian == "dense":  # P and O share the doubling; the loss alone skips O's products and y
        P, O, tail = gramians(A, model.u, model.v, doublings=doublings, shift=shift)
        x, y = _resolvents(model, target, after=P, adjoint=need_grad)
        if not need_grad:
            return P @ model.v, None, None, x, None, tail
        return P @ model.v, O @ model.u, (O, P), x, y, tail
    shifts = jnp.concatenate([jnp.ones((1,), A.dtype), target.s_re.astype(A.dtype)])
    Zp, Zo, R, tail = low_rank_gramians(
        A, model.u, model.v, shifts, max_steps=max_steps, observability=need_grad
    )
    # real poles s_j are shifts 1..J: x_j = (s_j I - A)^{-1} u = -(A - s_j I)^{-1} u, from the same inverses
    cdtype = jnp.result_type(A.dtype, jnp.complex64)
    x = -(R[1:] @ model.u).astype(cdtype)
    Pv = Zp @ (Zp.T @ model.v)
    if not need_grad:
        return Pv, None, None, x, None, tail
    y = -(model.v @ R[1:]).astype(cdtype)
    assert Zo is not None  # observability=need_grad=True
    return Pv, Zo @ (Zo.T @ model.u), (Zo @ (Zo.T @ Zp), Zp.T), x, y, tail


def population_loss_and_grad(
    model: LinearRNN,
    target: ExponentialSum,
    *,
    doublings: int = DEFAULT_DOUBLINGS,
    shift: float = 1.0,
    gramian: str = "dense",
    max_steps: int = 128,
) -> tuple[Scalar, LinearRNN, Scalar]:
    """Exact stationary loss, its gradient (a `LinearRNN` of dL/dW, dL/du, dL/dv) and the solver tail.

    `tail`: for `gramian="dense"`, max|F^(2^K)| of the Smith doubling: small when W - I is Hurwitz and
    the solve converged, O(1) or larger flags a network that is not (see `lyapunov`). For "low_rank",
    the ADI's relative last increment (<= sqrt(eps)/10 once converged; `max_steps` caps the steps).
    """
    Pv, Ou, OP, x, y, tail = _gramian_terms(model, target, gramian, doublings, shift, max_steps)
    assert Ou is not None and OP is not None and y is not None  # need_grad=True
    return *_loss_and_grad_from_terms(model, target, Pv, Ou, OP, x, y), tail


def population_loss(
    model: LinearRNN,
    target: ExponentialSum,
    *,
    doublings: int = DEFAULT_DOUBLINGS,
    shift: float = 1.0,
    gramian: str = "dense",
    max_steps: int = 128,
) -> Scalar:
    """Exact stationary population loss L = 1/2 int_0^inf (k - k*)^2 dtau of one network.

    With `gramian="dense"` it is differentiable by autodiff too (the low-rank ADI is a while loop);
    `population_loss_and_grad` gives the adjoint gradients for both.
    """
    Pv, _, _, x, _, _ = _gramian_terms(model, target, gramian, doublings, shift, max_steps, need_grad=False)
    return _loss_from_terms(model, target, Pv, x)


def _fast_terms(
    model: LinearRNN,
    target: ExponentialSum,
    max_doublings: int,
    shift: float | ArrayLike | None,
    need_grad: bool,
    factored: int | None = None,
    inverse: str = "lu",
):
    """P v, O u, O P as the pair (O, P), x, y, tail and the doublings used, all from `gramians_adaptive`
    (see its doc): one inverse per step (the Cayley transform's, by `inverse`); the resolvents come from the
    same powers of F, in real arithmetic for real poles (`kind="integrator"`: s_im = 0)."""
    A = model.W - jnp.eye(model.N, dtype=model.W.dtype)
    subspace = None
    if shift is None:  # the automatic shift's dominant subspace also starts the Neumann inverse
        shift, subspace = cayley_shift_and_subspace(model.W)
    poles = target.s_re if target.kind == "integrator" else target.poles
    P, O, tail, K, x, y = gramians_adaptive(
        A,
        model.u,
        model.v,
        max_doublings=max_doublings,
        shift=shift,
        observability=need_grad,
        poles=poles,
        factored=factored,
        inverse=inverse,
        subspace=subspace,  # used by the Neumann inverse only
    )
    if not need_grad:
        return P @ model.v, None, None, x, None, tail, K
    assert O is not None and y is not None  # observability=need_grad=True
    return P @ model.v, O @ model.u, (O, P), x, y, tail, K


@overload
def population_loss_and_grad_fast(
    model: LinearRNN,
    target: ExponentialSum,
    *,
    max_doublings: int = ...,
    shift: float | ArrayLike | None = ...,
    factored: int | None = ...,
    inverse: str = ...,
    return_doublings: Literal[False] = ...,
) -> tuple[Scalar, LinearRNN, Scalar]: ...


@overload
def population_loss_and_grad_fast(
    model: LinearRNN,
    target: ExponentialSum,
    *,
    max_doublings: int = ...,
    shift: float | ArrayLike | None = ...,
    factored: int | None = ...,
    inverse: str = ...,
    return_doublings: Literal[True],
) -> tuple[Scalar, LinearRNN, Scalar, Array]: ...


@overload
def population_loss_and_grad_fast(
    model: LinearRNN,
    target: ExponentialSum,
    *,
    max_doublings: int = ...,
    shift: float | ArrayLike | None = ...,
    factored: int | None = ...,
    inverse: str = ...,
    return_doublings: bool,
) -> tuple[Scalar, LinearRNN, Scalar] | tuple[Scalar, LinearRNN, Scalar, Array]: ...


def population_loss_and_grad_fast(
    model: LinearRNN,
    target: ExponentialSum,
    *,
    max_doublings: int = DEFAULT_DOUBLINGS,
    shift: float | ArrayLike | None = None,
    factored: int | None = None,
    inverse: str = "lu",
    return_doublings: bool = False,
) -> tuple[Scalar, LinearRNN, Scalar] | tuple[Scalar, LinearRNN, Scalar, Array]:
    """`population_loss_and_grad` (dense Gramians) with adaptive doublings and an automatic shift.

    Same loss and adjoint gradients (see the module doc) to the dtype's precision: the Smith doubling
    stops once |F^(2^K)|_F^2 <= eps, at most `max_doublings` (use the reference's `doublings` so a
    network that fails to converge is flagged by the same `tail` test); the first doublings run on
    rank-one factors (`factored`, default min(4, log2(N) - 1): a doubling on factors costs one n^3
    squaring against five for a dense one, so it pays unless the spectrum needs fewer); `shift=None`
    picks the Cayley shift from `lyapunov.cayley_shift_and_subspace` (a float fixes it). `inverse` inverts
    pI - A by one LU ("lu") or by the matmul-only Neumann product with an LU fallback ("neumann", for one
    network at a time: see `lyapunov.cayley_resolvent`), started on the dominant subspace the automatic
    shift found (so a learned outlier near 1 does not stall it). The resolvents come from the same powers
    of F (no factorisation besides the Cayley transform's). Not reverse-differentiable (a while loop):
    its gradient is the adjoint one it returns.

    Returns (loss, grad, tail), plus K (the doublings used) with `return_doublings`.
    """
    Pv, Ou, OP, x, y, tail, K = _fast_terms(model, target, max_doublings, shift, True, factored, inverse)
    assert Ou is not None and OP is not None and y is not None  # need_grad=True
    out = (*_loss_and_grad_from_terms(model, target, Pv, Ou, OP, x, y), tail)
    return out + (K,) if return_doublings else out


def population_loss_fast(
    model: LinearRNN,
    target: ExponentialSum,
    *,
    max_doublings: int = DEFAULT_DOUBLINGS,
    shift: float | ArrayLike | None = None,
    factored: int | None = None,
    inverse: str = "lu",
) -> Scalar:
    """`population_loss` by the adaptive solver of `population_loss_and_grad_fast` (P only, x only)."""
    Pv, _, _, x, _, _, _ = _fast_terms(
        model, target, max_doublings, shift, need_grad=False, factored=factored, inverse=inverse
    )
    return _loss_from_terms(model, target, Pv, x)


def _augmented(model: LinearRNN, target: ExponentialSum):
    """Error system (A~, b~, c~) with c~^T expm(A~ tau) b~ = k(tau) - k*(tau)."""
    S, b, c = target.realization()
    N, n = model.N, model.N + S.shape[0]
    dtype = model.W.dtype
    At = jnp.zeros((n, n), dtype)
    At = At.at[:N, :N].set(model.W - jnp.eye(N, dtype=dtype)).at[N:, N:].set(S.astype(dtype))
    bt = jnp.concatenate([model.u, b.astype(dtype)])
    ct = jnp.concatenate([model.readout_scale * model.v, -c.astype(dtype)])
    return At, bt, ct


def finite_horizon_loss(
    model: LinearRNN, target: ExponentialSum, horizon: float, *, doublings: int | None = None
):
    """L_T = 1/(2T) int_0^T (T - tau) (k - k*)^2 dtau, exactly, with matmuls and one small expm.

    R(t) = int_0^t (t - tau) X(tau) dtau with X(tau) = e^{A~ tau} b~ b~^T e^{A~^T tau} obeys the doubling
        R(2t) = R(t) + t Q(t) + Phi(t) R(t) Phi(t)^T,  Q(2t) = Q(t) + Phi(t) Q(t) Phi(t)^T,  Phi(2t) = Phi(t)^2,
    where Q(t) = int_0^t X. It starts from t0 = T / 2^K, where Van Loan's block exponential of
    [[-A~, I, 0], [0, -A~, b~b~^T], [0, 0, A~^T]] t0 is well conditioned (its growing blocks stay O(1)).
    """
    if not horizon > 0:
        raise ValueError(f"horizon must be > 0, got {horizon}")
    K = doublings if doublings is not None else max(0, math.ceil(math.log2(horizon))) + 5
    At, bt, ct = _augmented(model, target)
    n = At.shape[0]
    dtype = At.dtype
    t0 = horizon / 2**K
    Z = jnp.zeros((n, n), dtype)
    M = jnp.block([[-At, jnp.eye(n, dtype=dtype), Z], [Z, -At, jnp.outer(bt, bt)], [Z, Z, At.T]])
    E = jax.scipy.linalg.expm(M * t0)
    Phi = E[2 * n :, 2 * n :].T  # e^{A~ t0}
    Q = Phi @ E[n : 2 * n, 2 * n :]
    R = Phi @ E[:n, 2 * n :]

    def body(k, carry):
        Phi, Q, R = carry
        t = t0 * 2.0**k
        R = R + t * Q + Phi @ R @ Phi.T
        Q = Q + Phi @ Q @ Phi.T
        return Phi @ Phi, Q, R

    _, _, R = jax.lax.fori_loop(0, K, body, (Phi, Q, R))
    return 0.5 * ct @ R @ ct / horizon


def discrete_loss(
    model: LinearRNN,
    target: ExponentialSum,
    dt: float,
    *,
    doublings: int | None = None,
    min_decay: float = 1e-3,
):
    """Exact stationary loss L_dt of the Euler-discretised network (Stein equation; see module doc)."""
    if not dt > 0:
        raise ValueError(f"dt must be > 0, got {dt}")
    K = doublings if doublings is not None else doublings_for(dt * min_decay)
    s = model.readout_scale
    N = model.N
    F = jnp.eye(N, dtype=model.W.dtype) + dt * (model.W - jnp.eye(N, dtype=model.W.dtype))
    Pd, _ = solve_stein(F, jnp.outer(model.u, model.u), doublings=K)
    cdtype = jnp.result_type(model.W.dtype, jnp.complex64)
    rho = jnp.exp(-target.poles * dt).astype(cdtype)
    mats = jnp.eye(N, dtype=cdtype)[None] - rho[:, None, None] * F.astype(cdtype)[None]
    x = jnp.linalg.solve(mats, jnp.broadcast_to(model.u.astype(cdtype), (rho.shape[0], N))[..., None])[..., 0]
    cross = jnp.real(jnp.sum(target.residues.astype(cdtype) * (x @ model.v.astype(cdtype))))
    value = 0.5 * dt * (s**2 * model.v @ Pd @ model.v - 2 * s * cross + target.discrete_norm_sq(dt))
    return value.astype(model.W.dtype)


def sampled_loss(
    model: LinearRNN,
    target: ExponentialSum,
    key: PRNGKeyArray,
    *,
    dt: float,
    batch: int,
    steps: int,
    burn_in: int = 0,
    per_path: bool = False,
) -> Float[Array, ""] | Float[Array, " batch"]:
    """Sampled white-noise loss: mean over `batch` paths and `steps` steps of (y - y*)^2 / 2.

    Network (Euler-Maruyama) and target (exact discretisation, rho = exp(-s dt)) start at rest,
    are driven by the same noise xi_t ~ N(0, 1) (from `fold_in(key, t)`), run `burn_in` steps without
    loss, then `steps` steps with it. Its expectation is `discrete_loss` up to O(rho^(2 burn_in)).
    Backpropagates through `lax.scan`. With `per_path`, returns the (batch,) path averages.
    """
    S, b, c = target.realization()
    dtype = model.W.dtype
    N = model.N
    F = jnp.eye(N, dtype=dtype) + dt * (model.W - jnp.eye(N, dtype=dtype))
    Phi = jax.scipy.linalg.expm(S.astype(dtype) * dt)
    sq = jnp.sqrt(jnp.asarray(dt, dtype))
    s = model.readout_scale

    def step(carry, t):
        h, z = carry
        xi = jax.random.normal(jax.random.fold_in(key, t), (batch,), dtype)
        err = s * h @ model.v - z @ c.astype(dtype)
        h = h @ F.T + sq * xi[:, None] * model.u[None, :]
        z = z @ Phi.T + sq * xi[:, None] * b.astype(dtype)[None, :]
        return (h, z), 0.5 * err**2

    init = (jnp.zeros((batch, N), dtype), jnp.zeros((batch, S.shape[0]), dtype))
    (h, z), _ = jax.lax.scan(lambda carry, t: (step(carry, t)[0], None), init, jnp.arange(burn_in))
    _, sq_err = jax.lax.scan(step, (h, z), jnp.arange(burn_in, burn_in + steps))
    per = jnp.mean(sq_err, axis=0)
    return per if per_path else jnp.mean(per)


def impulse_response_euler(
    model: LinearRNN, dt: float, n: int, *, levels: int | None = None
) -> Float[Array, " n"]:
    """k_m = s v^T F^m u for m < n, F = I + dt (W - I) (the Euler network's response, no sqrt(dt)).

    Baby steps / giant steps, with L = 2^l ~ sqrt(n) (l = `levels`, default ceil(log2(n) / 2)): the
    columns F^m u (m < L) by doubling, B <- [B, F^(2^k) B] while F^(2^k) is squared (ending at G = F^L), then the rows s v^T G^i
    (i < n / L) by a scan of vector-matrix products, and k_(iL + m) = (s v^T G^i)(F^m u): one matmul.
    O(log n) squarings and O(sqrt n) matvecs, independent of any batch; differentiable.
    """
    N = model.N
    dtype = model.W.dtype
    F = jnp.eye(N, dtype=dtype) + dt * (model.W - jnp.eye(N, dtype=dtype))
    if levels is None:
        levels = max(0, math.ceil(math.log2(max(n, 1)) / 2))
    L = 2**levels
    B, G = model.u[:, None], F
    for _ in range(levels):
        B = jnp.concatenate([B, G @ B], axis=1)
        G = G @ G
    giants = -(-n // L)
    a0 = model.readout_scale * model.v
    _, rows = jax.lax.scan(lambda a, _: (a @ G, a), a0, None, length=giants)
    return (rows @ B).reshape(-1)[:n]


def sampled_loss_fft(
    model: LinearRNN,
    target: ExponentialSum,
    key: PRNGKeyArray,
    *,
    dt: float,
    batch: int,
    steps: int,
    burn_in: int = 0,
    per_path: bool = False,
) -> Float[Array, ""] | Float[Array, " batch"]:
    """`sampled_loss` (same noise, same value) through the impulse response and an FFT convolution.

    Both systems are linear and start at rest, so the error at step t is
        err_t = sum_(m < t) e_(t-1-m) xi_m,   e_n = sqrt(dt) (s v^T F^n u - c^T Phi^n b),
    the noise convolved with the error response. e is computed once per network and step
    (`impulse_response_euler`: cost independent of the batch) and convolved with the batch of noise
    by a zero-padded rfft; gradients flow through e only. Same noise draws as `sampled_loss`
    (xi_t = normal(fold_in(key, t), (batch,))), so the two agree to rounding.
    """
    S, b, c = target.realization()
    dtype = model.W.dtype
    T = burn_in + steps
    sq = jnp.sqrt(jnp.asarray(dt, dtype))
    Phi = jax.scipy.linalg.expm(S.astype(dtype) * dt)
    _, k_star = jax.lax.scan(lambda z, _: (Phi @ z, c.astype(dtype) @ z), b.astype(dtype), None, length=T)
    e = sq * (impulse_response_euler(model, dt, T) - k_star)  # (T,)
    xi = jax.vmap(lambda t: jax.random.normal(jax.random.fold_in(key, t), (batch,), dtype))(jnp.arange(T))
    nfft = 1 << max(1, (2 * T - 1).bit_length())  # >= 2T: no wrap-around into lags < T
    spectrum = jnp.fft.rfft(e, nfft)[None, :] * jnp.fft.rfft(xi.T, nfft, axis=-1)
    conv = jnp.fft.irfft(spectrum, nfft, axis=-1)[:, : T - 1]
    err = jnp.concatenate([jnp.zeros((batch, 1), dtype), conv.astype(dtype)], axis=1)[
        :, burn_in:
    ]  # (B, steps)
    per = 0.5 * jnp.mean(err**2, axis=1)
    return per if per_path else jnp.mean(per)
