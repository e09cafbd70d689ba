"""sigma = 0: the exact 2-dimensional reduction of the gradient flow (docs/concepts.md §5).

With Q an orthonormal basis of span{u0, v0} and u = sqrt(N) Q a, v = sqrt(N) Q b, W = Q M Q^T, the
mean-field gradient flow (dW/dt = -eta dL/dW, du/dt = -eta N dL/du, dv/dt = -eta N dL/dv) stays in this
form, and (M, a, b) follow plain rate-eta gradient flow of the two-pole loss:

    dM/dt = -eta dL/dM,   da/dt = -eta dL/da,   db/dt = -eta dL/db          (the 8-ODE)

because dL/dW = Q (dL/dM) Q^T and dL/da = sqrt(N) Q^T dL/du. It conserves the 2x2 charge
C = M M^T - M^T M + a a^T - b b^T.

Symmetric form (the 5-ODE, exact when |a0| = |b0| and M0 = [[alpha, beta], [-beta, delta]] in the basis
e_+- = (a0 +- b0)/|a0 +- b0|): a = (p, q), b = (p, -q), and

    d(alpha)/dt = -eta dL/d(alpha),  d(delta)/dt = -eta dL/d(delta),
    d(beta)/dt = -(eta/2) dL/d(beta),  dp/dt = -(eta/2) dL/dp,  dq/dt = -(eta/2) dL/dq,

(the halves: beta, p and q each stand for two equal-magnitude entries of (M, a, b)), conserving
beta (delta - alpha) + p q.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .._compile import ELEMENTWISE, HOT, compiler_options, jit
from ..model import LinearRNN
from ..targets import ExponentialSum
from ._ode import integrate
from ._rosenbrock import ROLLED_MAX_CELLS, rodas4_batch
from ._twopole import two_pole_eigenvalues, two_pole_loss

__all__ = [
    "eight_state_from_network",
    "eight_state_infinite",
    "five_state_from_eight",
    "eight_from_five",
    "eight_loss",
    "five_loss",
    "five_charge",
    "eight_charge",
    "solve_eight",
    "solve_five",
    "solve_sigma0_grid",
]


def _unpack8(y):
    return y[..., :4].reshape(y.shape[:-1] + (2, 2)), y[..., 4:6], y[..., 6:8]


def _pack8(M, a, b):
    return jnp.concatenate([M.reshape(M.shape[:-2] + (4,)), a, b], -1)


def eight_loss(y, target: ExponentialSum):
    """Two-pole loss of the 8-state y = (M.ravel(), a, b)."""
    return two_pole_loss(*_unpack8(y), target)


def _unpack5(z):
    alpha, beta, delta, p, q = (z[..., i] for i in range(5))
    M = jnp.stack([jnp.stack([alpha, beta], -1), jnp.stack([-beta, delta], -1)], -2)
    return M, jnp.stack([p, q], -1), jnp.stack([p, -q], -1)


def eight_from_five(z):
    """The 8-state (in the symmetric basis) of the 5-state z = (alpha, beta, delta, p, q)."""
    return _pack8(*_unpack5(z))


def five_loss(z, target: ExponentialSum):
    return two_pole_loss(*_unpack5(z), target)


def five_charge(z):
    """beta (delta - alpha) + p q, conserved by the 5-ODE."""
    return z[..., 1] * (z[..., 2] - z[..., 0]) + z[..., 3] * z[..., 4]


def eight_charge(y):
    """C = M M^T - M^T M + a a^T - b b^T (2x2), conserved by the 8-ODE."""
    M, a, b = _unpack8(y)
    MT = jnp.swapaxes(M, -1, -2)
    return M @ MT - MT @ M + a[..., :, None] * a[..., None, :] - b[..., :, None] * b[..., None, :]


def eight_state_from_network(network: LinearRNN):
    """8-state of a network: Q = Gram-Schmidt(u0, v0), a = Q^T u0/sqrt(N), b = Q^T v0/sqrt(N), M = Q^T W0 Q.

    Exact for W0 = 0; for W0 != 0 it is the depth-0 Galerkin start (see `_krylov`). Returns (y0, Q).
    """
    N = network.N
    u, v = network.u, network.v
    e1 = u / jnp.linalg.norm(u)
    r = v - (v @ e1) * e1
    e2 = r / jnp.linalg.norm(r)
    Q = jnp.stack([e1, e2], -1)
    sq = jnp.sqrt(jnp.asarray(N, u.dtype))
    return _pack8(Q.T @ network.W @ Q, Q.T @ u / sq, Q.T @ v / sq), Q


def eight_state_infinite(dtype=None):
    """N -> inf sigma = 0 start: M = 0, a = (1, 0), b = (0, 1) (|u|^2/N -> 1, u.v/N -> 0)."""
    dtype = dtype or jnp.result_type(float)
    return jnp.array([0, 0, 0, 0, 1, 0, 0, 1], dtype)


def five_state_from_eight(y):
    """(alpha, beta, delta, p, q) and the rotation R (rows e_+, e_-) with a_sym = R a, b_sym = R b.

    Valid when |a| = |b| and R M R^T = [[alpha, beta], [-beta, delta]] (true for M = 0).
    """
    M, a, b = _unpack8(y)
    ep = (a + b) / jnp.linalg.norm(a + b)
    em = (a - b) / jnp.linalg.norm(a - b)
    R = jnp.stack([ep, em], 0)
    Ms = R @ M @ R.T
    z = jnp.stack([Ms[0, 0], 0.5 * (Ms[0, 1] - Ms[1, 0]), Ms[1, 1], ep @ a, em @ a])
    return z, R


def _outlier(lp, lm, kind, bulk=0.0):
    """Outlier of spec(M) u {bulk}: the complement of span Q contributes eigenvalue 0 at sigma = 0."""
    from ..observables import outlier_eigenvalue

    ev = jnp.stack([lp, lm, jnp.full_like(lp, bulk)], -1)
    return outlier_eigenvalue(ev, kind)


def _observables8(ys, target):
    M, a, b = _unpack8(ys)
    loss = jax.vmap(lambda y: eight_loss(y, target))(ys)
    lp, lm = two_pole_eigenvalues(M)
    return loss, lp, lm, _outlier(lp, lm, target.kind)


def solve_eight(target: ExponentialSum, y0, eta, ts, *, rtol=1e-10, atol=1e-12, max_steps=100_000):
    """Integrate the 8-ODE from y0 on the save times ts (one cell; vmap for grids).

    **Returns:** dict with `y` (T, 8), `loss` (T,), `lambda_plus`, `lambda_minus`, `outlier` (T,) complex,
    `charge` (T, 2, 2), `ok` (bool), `num_steps`.
    """
    grad = jax.grad(eight_loss)
    rhs = lambda t, y, args: -args[1] * grad(y, args[0])
    ys, ok, n = integrate(rhs, y0, (target, eta), ts, rtol=rtol, atol=atol, max_steps=max_steps)
    loss, lp, lm, out = _observables8(ys, target)
    return dict(
        y=ys,
        loss=loss,
        lambda_plus=lp,
        lambda_minus=lm,
        outlier=out,
        charge=eight_charge(ys),
        ok=ok,
        num_steps=n,
    )


_FIVE_RATES = jnp.array([1.0, 0.5, 1.0, 0.5, 0.5])


def solve_five(target: ExponentialSum, z0, eta, ts, *, rtol=1e-10, atol=1e-12, max_steps=100_000):
    """Integrate the 5-ODE from z0 = (alpha, beta, delta, p, q); outputs as `solve_eight` plus `z`."""
    grad = jax.grad(five_loss)
    rhs = lambda t, z, args: -args[1] * _FIVE_RATES.astype(z.dtype) * grad(z, args[0])
    zs, ok, n = integrate(rhs, z0, (target, eta), ts, rtol=rtol, atol=atol, max_steps=max_steps)
    ys = eight_from_five(zs)
    loss, lp, lm, out = _observables8(ys, target)
    return dict(
        z=zs,
        y=ys,
        loss=loss,
        lambda_plus=lp,
        lambda_minus=lm,
        outlier=out,
        charge=five_charge(zs),
        ok=ok,
        num_steps=n,
    )


# ------------------------------------------------------------------ whole grids: batched Rodas4 (the fast path)


def _kindless(target: ExponentialSum):
    """The target's arrays only (kind dropped: the flow does not depend on it, so one compiled program serves
    every kind)."""
    return ExponentialSum(target.r_re, target.r_im, target.s_re, target.s_im, kind="sum")


def _grid_states_fn(target, y0, ts, n_saves, rtol, atol, max_steps, *, symmetric, lanes):
    from ._field import EIGHT_RATES, FIVE_RATES, eight_field, five_field

    field, rates = (five_field, FIVE_RATES) if symmetric else (eight_field, EIGHT_RATES)
    return rodas4_batch(
        field, rates, y0, target, ts, rtol=rtol, atol=atol, max_steps=max_steps, n_saves=n_saves, lanes=lanes
    )


_COMPILED: dict = {}
# grids pad to at least this many cells, so that a sweep's small grids (its N -> inf points, a chunk of its
# sigma = 0 networks) share one compiled program; idle lanes cost nothing measurable at this size
MIN_GRID_CELLS = 32


def _grid_states(target, y0, ts, n_saves, rtol, atol, max_steps, *, symmetric, lanes):
    """`_grid_states_fn`, compiled ahead of time once per (shapes, symmetric, lanes) (jaxrnn._compile)."""
    args = (target, y0, ts, n_saves, rtol, atol, max_steps)
    key = (
        jax.tree.structure(args),
        tuple((x.shape, x.dtype) for x in jax.tree.leaves(args)),
        symmetric,
        lanes,
    )
    if key not in _COMPILED:
        fn = jax.jit(functools.partial(_grid_states_fn, symmetric=symmetric, lanes=lanes))
        # a small grid rolls its stage loop and runs in milliseconds: compile it fast (HOT's LLVM -O1, ~0.5 s
        # less); a large one is compiled for run time (ELEMENTWISE: -O1 would cost ~40% of its run time)
        role = HOT if y0.shape[0] <= ROLLED_MAX_CELLS else ELEMENTWISE
        _COMPILED[key] = fn.lower(*args).compile(compiler_options=compiler_options(role))
    return _COMPILED[key](*args)


@jit(static_argnums=0)
def _grid_inputs(symmetric: bool, y0):
    """The solver's start states: the 8-states y0, or their 5-states when `symmetric` (one program)."""
    return jax.vmap(lambda y: five_state_from_eight(y)[0])(y0) if symmetric else y0


@jit(static_argnums=0)
def _grid_outputs(symmetric: bool, ys, target):
    """8-states, loss, lambda_+- and the conserved charge of (cells, T, n) solver states, as one program
    (kind-free: both members of the pair are returned; eagerly, ~40 small programs compiled one by one)."""
    zs = ys
    if symmetric:
        ys = eight_from_five(zs)
    loss = jax.vmap(jax.vmap(eight_loss, (0, None)))(ys, target)
    lp, lm = two_pole_eigenvalues(_unpack8(ys)[0])
    return ys, loss, lp, lm, five_charge(zs) if symmetric else eight_charge(ys)


outlier_of_pair = jit(_outlier, static_argnums=2)


def solve_sigma0_grid(
    target: ExponentialSum, y0, eta, ts, *, symmetric: bool, rtol, atol, max_steps, lanes=256
):
    """The sigma = 0 flow of every cell of a flat grid (cells first), in one compiled call.

    Time rescaling: the flow is dx/dt = -eta R grad L(x), so x_eta(t) = x_1(eta t); every cell is solved at
    rate 1 on its own save times eta * ts (the same adaptive steps in rescaled time, so the same accuracy).
    Cells are queued stiffest first (smallest target decay rate), which only balances the work queue.
    The batch and the number of save times are padded to powers of two, the batch to at least
    MIN_GRID_CELLS (copies of a cell, dropped; ignored save slots), so grids of similar size share one
    compiled program.

    **Arguments:** `target` (cells, J) leaves; `y0` (cells, 8) 8-states (the 5-state is taken from them when
    `symmetric`); `eta` (cells,) > 0; `ts` (T,) save times, ts[0] = 0.
    **Returns:** dict of numpy arrays (cells first): `y` (8-states), `z` (5-states if symmetric), `loss`,
    `lambda_plus`, `lambda_minus`, `charge`, `ok`, `num_steps`.
    """
    B = y0.shape[0]
    ts = np.asarray(ts, np.float64)
    lead = ts[0] > 0  # the flow starts at t = 0: integrate from there and drop that save
    if lead:
        ts = np.concatenate([[0.0], ts])
    eta = np.asarray(eta, np.float64)
    order = np.argsort(np.min(np.asarray(target.s_re), -1), kind="stable")
    Bp = max(MIN_GRID_CELLS, 1 << int(np.ceil(np.log2(max(B, 1)))))
    idx = np.concatenate([order, np.full(Bp - B, order[-1])])
    tg = jax.tree.map(lambda x: jnp.asarray(np.asarray(x)[idx], jnp.float64), _kindless(target))
    y0 = jnp.asarray(np.asarray(y0, np.float64)[idx])
    y0 = _grid_inputs(symmetric, y0)
    T = len(ts)
    Tp = max(16, 1 << int(np.ceil(np.log2(T))))
    tpad = np.concatenate([ts, ts[-1] + np.arange(1, Tp - T + 1)])  # never reached: n_saves = T
    cell_ts = jnp.asarray(eta[idx, None] * tpad[None, :])
    ys, ok, n = _grid_states(
        tg,
        y0,
        cell_ts,
        jnp.full(Bp, T, jnp.int32),
        jnp.float64(rtol),
        jnp.float64(atol),
        jnp.int32(max_steps),
        symmetric=symmetric,
        lanes=int(min(lanes, Bp)),
    )
    ys = np.asarray(ys)[:, :T]  # a host slice (eagerly on the device, a program of its own)
    inv = np.empty(B, int)
    inv[order] = np.arange(B)
    out = {"z": ys} if symmetric else {}
    ys, loss, lp, lm, charge = _grid_outputs(symmetric, ys, tg)
    out.update(y=ys, loss=loss, lambda_plus=lp, lambda_minus=lm, ok=ok, num_steps=n, charge=charge)
    out = {k: np.asarray(v)[inv] for k, v in out.items()}
    if lead:
        out = {k: v[:, 1:] if v.ndim >= 2 and v.shape[1] == len(ts) else v for k, v in out.items()}
    return out
