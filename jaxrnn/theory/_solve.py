"""`solve`: reduced theories that report the trainer's observables (t, loss, outlier, t_learn)."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..model import LinearRNN, init_network
from ..observables import learning_time
from ..targets import ExponentialSum
from ._sigma0 import eight_state_from_network, eight_state_infinite, five_state_from_eight, solve_eight, solve_five

__all__ = ["TheoryResult", "solve", "theory_minus_simulation"]


@dataclasses.dataclass
class TheoryResult:
    """Observables of a reduced theory, with the trainer's names and meanings.

    Arrays carry the grid's batch shape first and the save-time axis last.

    **Fields:**
    - `t`: save times (flow time), shape (T,).
    - `loss`: population loss L(t), shape (..., T).
    - `outlier`: complex eigenvalue of W of largest real part (oscillator: the upper member of the rightmost
      conjugate pair), shape (..., T).
    - `t_learn`: first time L < 1e-2 L(0), log-interpolated (`jaxrnn.observables.learning_time`), shape (...).
    - `ok`: per-cell solver status (True = diffrax reported success), shape (...).
    - `method`: which reduction produced it ("8ode", "5ode", "krylov", "fock").
    - `extra`: further per-cell arrays (reduced state, lambda_+-, residues, charge, num_steps, ...).
    """

    t: np.ndarray
    loss: np.ndarray
    outlier: np.ndarray
    t_learn: np.ndarray
    ok: np.ndarray
    method: str
    extra: dict = dataclasses.field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        if key in ("t", "loss", "outlier", "t_learn", "ok", "method"):
            return getattr(self, key)
        return self.extra[key]

    def keys(self):
        return ["t", "loss", "outlier", "t_learn", "ok", "method", *self.extra]


def _batch_shape(target, eta, net_batch):
    return np.broadcast_shapes(target.r_re.shape[:-1], np.shape(eta), net_batch)


def _flatten_target(target: ExponentialSum, batch):
    B = int(np.prod(batch, dtype=int))
    J = target.r_re.shape[-1]
    return jax.tree.map(lambda x: jnp.broadcast_to(x, tuple(batch) + (J,)).reshape(B, J), target)


@functools.partial(jax.jit, static_argnames=("rtol", "atol", "max_steps", "symmetric"))
def _sigma0_batch(target, eta, y0, ts, *, rtol, atol, max_steps, symmetric):
    def one(tg, e, y):
        if symmetric:
            z, _ = five_state_from_eight(y)
            return solve_five(tg, z, e, ts, rtol=rtol, atol=atol, max_steps=max_steps)
        return solve_eight(tg, y, e, ts, rtol=rtol, atol=atol, max_steps=max_steps)

    return jax.vmap(one)(target, eta, y0)


def _network_batch(network):
    return network.W.shape[:-2] if network is not None else ()


def solve(
    target: ExponentialSum,
    *,
    t1: float,
    sigma: float = 0.0,
    eta=1.0,
    ts=None,
    n_save: int = 1001,
    network: LinearRNN | None = None,
    N: int | None = None,
    key=None,
    depth: int = 0,
    symmetric: bool = False,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 100_000,
    threshold: float = 1e-2,
) -> TheoryResult:
    """Solve a reduced theory of the mean-field gradient flow; same observables as the trainer.

    Which theory (docs/theory.md):
    - `sigma == 0`, no network: the N -> inf sigma = 0 theory (8-ODE from M = 0, a = (1,0), b = (0,1));
      `symmetric=True` uses the equivalent 5-ODE.
    - a `network` (or `N` and `key`, drawn with `init_network(N, sigma, key)`) with W0 = 0: the exact
      8-ODE from that network's u0, v0 (`symmetric=True` requires |u0| = |v0|).
    - a network with W0 != 0: the block-Krylov (Galerkin) reduction of depth `depth` (`_krylov`).
    - `sigma > 0`, no network: the N -> inf Fock-space theory at depth `depth` (`_fock`).

    **Arguments:**
    - `target`: an `ExponentialSum`; leading axes (a population of targets) form a grid with `eta`.
    - `t1`: final flow time; `ts` (save times, starting at 0) defaults to `linspace(0, t1, n_save)`.
    - `eta`: learning rate, scalar or array broadcastable with the target's batch shape.
    - `rtol`, `atol`, `max_steps`: the Kvaerno5 + PID solve. `threshold`: of the learning time.

    **Returns:** a `TheoryResult` (attributes or keys: `t`, `loss`, `outlier`, `t_learn`, `ok`, ...).
    """
    ts = jnp.linspace(0.0, t1, n_save) if ts is None else jnp.asarray(ts)
    if network is None and N is not None:
        if key is None:
            raise ValueError("give `key` with `N` (or pass `network`)")
        network = init_network(N, sigma, key)
    dtype = ts.dtype
    if network is not None and network.scaling != "mean_field":
        raise ValueError("the reduced theories are derived for the mean-field scaling")

    if network is None and sigma == 0.0:
        batch = _batch_shape(target, eta, ())
        y0 = jnp.broadcast_to(eight_state_infinite(dtype), tuple(batch) + (8,))
        return _run_sigma0(target, eta, y0, ts, batch, symmetric, rtol, atol, max_steps, threshold)
    if network is not None and depth == 0 and not bool(np.any(np.asarray(network.W))):
        nb = _network_batch(network)
        y0 = jnp.vectorize(lambda W, u, v: eight_state_from_network(LinearRNN(W, u, v))[0], signature="(n,n),(n),(n)->(k)")(
            network.W, network.u, network.v
        )
        batch = _batch_shape(target, eta, nb)
        y0 = jnp.broadcast_to(y0, tuple(batch) + (8,))
        return _run_sigma0(target, eta, y0, ts, batch, symmetric, rtol, atol, max_steps, threshold)
    if network is not None:
        from ._krylov import solve_krylov

        return solve_krylov(target, network, ts, eta=eta, depth=depth, rtol=rtol, atol=atol, max_steps=max_steps, threshold=threshold)
    from ._fock import solve_fock

    return solve_fock(target, sigma, ts, eta=eta, depth=depth, rtol=rtol, atol=atol, max_steps=max_steps, threshold=threshold)


def _run_sigma0(target, eta, y0, ts, batch, symmetric, rtol, atol, max_steps, threshold):
    B = int(np.prod(batch, dtype=int))
    tg = _flatten_target(target, batch)
    e = jnp.broadcast_to(jnp.asarray(eta, ts.dtype), batch).reshape(B)
    out = _sigma0_batch(tg, e, y0.reshape(B, 8), ts, rtol=rtol, atol=atol, max_steps=max_steps, symmetric=symmetric)
    out = {k: np.asarray(v).reshape(tuple(batch) + np.shape(v)[1:]) for k, v in out.items()}
    return _result(ts, out, "5ode" if symmetric else "8ode", threshold)


def _result(ts, out, method, threshold):
    t = np.asarray(ts)
    loss = out.pop("loss")
    return TheoryResult(
        t=t, loss=loss, outlier=out.pop("outlier"), t_learn=learning_time(t, loss, threshold=threshold),
        ok=out.pop("ok"), method=method, extra=out,
    )


def theory_minus_simulation(theory, simulation, *, eps: float = 1e-300) -> dict:
    """Per-cell errors of a theory against a simulation with the same variables (attributes or keys).

    Both must be saved on the same times. **Returns:** dict with `loss_rel` (max over t of |dL|/L_sim),
    `outlier_abs` (max over t of |d lambda|), `outlier_final_rel` (|d lambda(t1)| / |lambda_sim(t1)|) and
    `t_learn_rel` ((t_theory - t_sim) / t_sim), each with the grid's batch shape.
    """
    get = lambda obj, k: np.asarray(obj[k] if isinstance(obj, dict) or hasattr(obj, "__getitem__") and not hasattr(obj, k) else getattr(obj, k))
    Lt, Ls = get(theory, "loss"), get(simulation, "loss")
    Ot, Os = get(theory, "outlier"), get(simulation, "outlier")
    Tt, Ts = get(theory, "t_learn"), get(simulation, "t_learn")
    return dict(
        loss_rel=np.max(np.abs(Lt - Ls) / np.maximum(np.abs(Ls), eps), -1),
        outlier_abs=np.max(np.abs(Ot - Os), -1),
        outlier_final_rel=np.abs(Ot[..., -1] - Os[..., -1]) / np.maximum(np.abs(Os[..., -1]), eps),
        t_learn_rel=(Tt - Ts) / Ts,
    )
