"""`solve`: reduced theories that report the trainer's observables (t, loss, outlier, t_learn).

The theory is an explicit choice (`Sigma0()`, `Krylov(depth)`, `Fock(depth)`); without one, `solve` infers it
from `sigma`, `network` and `depth` as before. Every solver runs in float64 whatever the global
`jax_enable_x64` flag says (inside `jax.enable_x64(True)`; inputs are cast to float64, so a target built in
float32 carries its float32-rounded rates).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from .._compile import jit
from ..model import LinearRNN, init_network
from ..targets import ExponentialSum
from ._result import TheoryResult, make_result
from ._sigma0 import eight_state_from_network, eight_state_infinite, solve_sigma0_grid

__all__ = ["Sigma0", "Krylov", "Fock", "solve", "theory_minus_simulation"]


class Sigma0(eqx.Module):
    """sigma = 0: the exact 8-ODE (M, a, b) with the closed-form two-pole loss; `symmetric=True`: the 5-ODE
    (valid when |u0| = |v0|, e.g. the N -> inf start). From `network` (W0 = 0) or, without one, N -> inf.

    `symmetric=None` (default) picks the 5-ODE where it is exact (the N -> inf start, or every network with
    |u0| = |v0|) and the 8-ODE otherwise; the two agree to the solver tolerance where both apply, and the
    5-ODE is ~4x cheaper per cell (docs/theory.md, "Throughput")."""

    symmetric: bool | None = eqx.field(static=True, default=None)


class Krylov(eqx.Module):
    """Block-Krylov (Galerkin) reduction of depth `depth` >= 0 around a given finite-N `network`."""

    depth: int = eqx.field(static=True, default=2)

    def __check_init__(self):
        if not isinstance(self.depth, (int, np.integer)) or self.depth < 0:
            raise ValueError(f"Krylov depth must be an integer >= 0, got {self.depth!r}")


class Fock(eqx.Module):
    """N -> inf finite-sigma theory: the Fock-space limit of `Krylov` at depth `depth` (docs/concepts.md §6).

    `depth`: an integer in 0..7, or "auto": per cell, the smallest depth in 1..`max_depth` whose estimated
    truncation error (depth k against k - 1, relative change of t_learn) is <= `tol`."""

    depth: int | str = eqx.field(static=True, default=2)
    tol: float = eqx.field(static=True, default=1e-2)
    max_depth: int = eqx.field(static=True, default=5)

    def __check_init__(self):
        ok_int = lambda x, hi: isinstance(x, (int, np.integer)) and not isinstance(x, bool) and 0 <= x <= hi
        if not (self.depth == "auto" or ok_int(self.depth, 7)):
            raise ValueError(f"Fock depth must be an integer in 0..7 or 'auto', got {self.depth!r}")
        if not ok_int(self.max_depth, 7) or self.max_depth < 1:
            raise ValueError(f"Fock max_depth must be an integer in 1..7, got {self.max_depth!r}")
        if not (isinstance(self.tol, (int, float)) and 0 < self.tol < 1):
            raise ValueError(f"Fock tol must be in (0, 1), got {self.tol!r}")


def _batch_shape(target, eta, net_batch):
    return np.broadcast_shapes(np.shape(target.r_re)[:-1], np.shape(eta), net_batch)


def _flatten_target(target: ExponentialSum, batch):
    B = int(np.prod(batch, dtype=int))
    J = np.shape(target.r_re)[-1]
    return jax.tree.map(lambda x: jnp.broadcast_to(x, tuple(batch) + (J,)).reshape(B, J), target)


def _network_batch(network):
    return network.W.shape[:-2] if network is not None else ()


def _check(t1, ts, eta, rtol, atol, max_steps, threshold, n_save):
    if not np.isfinite(t1) or t1 <= 0:
        raise ValueError(f"t1 must be finite and > 0, got {t1!r}")
    if ts is None:
        if int(n_save) < 2:
            raise ValueError(f"n_save must be >= 2, got {n_save!r}")
        ts = np.linspace(0.0, float(t1), int(n_save))
    ts = np.asarray(ts, np.float64)
    if ts.ndim != 1 or ts.size < 2 or ts[0] < 0 or np.any(np.diff(ts) <= 0) or not np.all(np.isfinite(ts)):
        raise ValueError("ts must be 1-D, finite, >= 0 and strictly increasing with at least 2 times")
    e = np.asarray(eta, np.float64)
    if np.any(~np.isfinite(e)) or np.any(e <= 0):
        raise ValueError(f"eta must be finite and > 0, got {eta!r}")
    if not 0 < rtol < 1:
        raise ValueError(f"rtol must be in (0, 1), got {rtol!r}")
    if not atol > 0:
        raise ValueError(f"atol must be > 0, got {atol!r}")
    if int(max_steps) < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps!r}")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
    return ts


def _choose(theory, sigma, network, depth, symmetric):
    """The theory object: explicit, or inferred from (sigma, network, depth) as documented in `solve`."""
    if theory is None:
        if network is None:
            theory = (
                Sigma0(symmetric)
                if np.all(np.asarray(sigma) == 0.0) and not depth
                else Fock(depth if depth is not None else 2)
            )
        elif not depth and not bool(np.any(np.asarray(network.W))):
            theory = Sigma0(symmetric)
        else:
            theory = Krylov(depth if depth is not None else 0)
        if symmetric and not isinstance(theory, Sigma0):
            raise ValueError(
                "symmetric=True applies to the sigma = 0 theory only (network W0 = 0 or sigma = 0)"
            )
        return theory
    if depth is not None:
        raise ValueError("pass the depth inside the theory (Krylov(depth) or Fock(depth)), not as `depth`")
    if symmetric:
        raise ValueError("pass Sigma0(symmetric=True) instead of symmetric=True with an explicit theory")
    if isinstance(theory, Sigma0):
        if np.any(np.asarray(sigma) != 0.0):
            raise ValueError(f"Sigma0() is the sigma = 0 theory; got sigma = {sigma!r} (use Fock(depth))")
        if network is not None and bool(np.any(np.asarray(network.W))):
            raise ValueError("Sigma0() needs a network with W0 = 0 (use Krylov(depth) for W0 != 0)")
    elif isinstance(theory, Krylov):
        if network is None:
            raise ValueError(
                "Krylov(depth) needs a finite-N `network` (or N and key); for N -> inf use Fock(depth)"
            )
    elif isinstance(theory, Fock):
        if network is not None:
            raise ValueError("Fock(depth) is the N -> inf theory and takes no `network` (use Krylov(depth))")
    else:
        raise ValueError(f"theory must be Sigma0(), Krylov(depth) or Fock(depth), got {theory!r}")
    return theory


def solve(
    target: ExponentialSum,
    theory: Sigma0 | Krylov | Fock | None = None,
    *,
    t1: float,
    sigma: float | ArrayLike = 0.0,
    eta: float | ArrayLike = 1.0,
    ts=None,
    n_save: int = 1001,
    network: LinearRNN | None = None,
    N: int | None = None,
    key=None,
    depth: int | None = None,
    symmetric: bool | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 100_000,
    threshold: float = 1e-2,
) -> TheoryResult:
    """Solve a reduced theory of the mean-field gradient flow; same observables as the trainer.

    Which theory (docs/theory.md): explicit `theory`, or inferred:
    - `sigma == 0`, no network: `Sigma0()`, the N -> inf theory from M = 0, a = (1,0), b = (0,1): the 5-ODE,
      exact there (`symmetric=False` forces the equivalent 8-ODE).
    - a `network` (or `N` and `key`, drawn with `init_network(N, sigma, key)`) with W0 = 0: `Sigma0()`, the exact
      8-ODE from that network's u0, v0 (the 5-ODE when every network has |u0| = |v0|; `symmetric=True`
      requires it).
    - a network with W0 != 0 (or `depth` >= 1 with a network): `Krylov(depth)` (depth 0 by default).
    - `sigma > 0`, no network: `Fock(depth)` (depth 2 by default). `sigma` may be an array: it joins the
      grid (Fock only), and every cell is solved in one vmapped call.
    Options that do not apply to the chosen theory raise ValueError.

    **Arguments:**
    - `target`: an `ExponentialSum`; leading axes (a population of targets) form a grid with `eta` (and, for
      `Sigma0`, with a stacked `network`'s population axis).
    - `t1`: final flow time > 0; `ts` (save times, 1-D, strictly increasing, from 0) defaults to
      `linspace(0, t1, n_save)`.
    - `eta`: learning rate(s) > 0, broadcastable with the target's batch shape.
    - `rtol`, `atol`, `max_steps`: the adaptive solve (per-step error test; step budget per cell).
      `threshold`: of the learning time.

    **Returns:** a `TheoryResult` (attributes or keys: `t`, `loss`, `outlier`, `t_learn`, `ok`, ...).
    """
    ts = _check(t1, ts, eta, rtol, atol, max_steps, threshold, n_save)
    if np.ndim(sigma) and (network is not None or N is not None):
        raise ValueError("an array of sigma applies to Fock(depth) only (no `network`, no `N`)")
    if network is None and N is not None:
        if key is None:
            raise ValueError("give `key` with `N` (or pass `network`)")
        network = init_network(N, sigma, key)
    if network is not None and network.scaling != "mean_field":
        raise ValueError("the reduced theories are derived for the mean-field scaling")
    theory = _choose(theory, sigma, network, depth, symmetric)
    with jax.enable_x64(True):
        if isinstance(theory, Sigma0):
            return _run_sigma0(target, eta, network, ts, theory.symmetric, rtol, atol, max_steps, threshold)
        if isinstance(theory, Krylov):
            from ._krylov import solve_krylov

            return solve_krylov(
                target,
                network,
                ts,
                eta=eta,
                depth=theory.depth,
                rtol=rtol,
                atol=atol,
                max_steps=max_steps,
                threshold=threshold,
            )
        from ._fock import solve_fock

        if not (np.all(np.isfinite(sigma)) and np.all(np.asarray(sigma) >= 0)):
            raise ValueError(f"sigma must be finite and >= 0, got {sigma!r}")
        return solve_fock(
            target,
            sigma,
            ts,
            eta=eta,
            depth=theory.depth,
            tol=theory.tol,
            max_depth=theory.max_depth,
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
            threshold=threshold,
        )


@jit
def _eight_states(W, u, v):
    """8-states of a batch of networks (one program; eagerly, one per op)."""
    return jnp.vectorize(
        lambda W, u, v: eight_state_from_network(LinearRNN(W, u, v))[0], signature="(n,n),(n),(n)->(k)"
    )(W, u, v)


def _run_sigma0(target, eta, network, ts, symmetric, rtol, atol, max_steps, threshold):
    if network is None:
        nb = ()
        y0 = np.asarray(eight_state_infinite(jnp.float64))
        symmetric = True if symmetric is None else symmetric
    else:
        nb = _network_batch(network)
        W, u, v = (np.asarray(x, np.float64) for x in (network.W, network.u, network.v))
        y0 = np.asarray(_eight_states(W, u, v))
        nu, nv = np.linalg.norm(y0[..., 4:6], axis=-1), np.linalg.norm(y0[..., 6:8], axis=-1)
        balanced = not np.any(np.abs(nu - nv) > 1e-12 * np.maximum(nu, 1.0))
        if symmetric is None:
            symmetric = balanced
        elif symmetric:
            if not balanced:
                raise ValueError(
                    "symmetric=True (the 5-ODE) needs |u0| = |v0| (e.g. init_network(..., rescale_v=True))"
                )
    batch = _batch_shape(target, eta, nb)
    B = int(np.prod(batch, dtype=int))
    tg = _flatten_target(target, batch)
    e = np.broadcast_to(np.asarray(eta, np.float64), batch).reshape(B)
    y0 = np.broadcast_to(y0, tuple(batch) + (8,)).reshape(B, 8)
    out = solve_sigma0_grid(tg, y0, e, ts, symmetric=symmetric, rtol=rtol, atol=atol, max_steps=max_steps)
    from ._sigma0 import outlier_of_pair

    out["outlier"] = np.asarray(outlier_of_pair(out["lambda_plus"], out["lambda_minus"], target.kind))
    out = {k: v.reshape(tuple(batch) + v.shape[1:]) for k, v in out.items()}
    return make_result(ts, out, "5ode" if symmetric else "8ode", threshold)


def theory_minus_simulation(theory, simulation, *, eps: float = 1e-300) -> dict:
    """Per-cell errors of a theory against a simulation with the same variables (attributes or keys).

    Both must be saved on the same times. **Returns:** dict with `loss_rel` (max over t of |dL|/L_sim),
    `outlier_abs` (max over t of |d lambda|), `outlier_final_rel` (|d lambda(t1)| / |lambda_sim(t1)|) and
    `t_learn_rel` ((t_theory - t_sim) / t_sim), each with the grid's batch shape.
    """
    get = lambda obj, k: np.asarray(
        obj[k]
        if isinstance(obj, dict) or hasattr(obj, "__getitem__") and not hasattr(obj, k)
        else getattr(obj, k)
    )
    Lt, Ls = get(theory, "loss"), get(simulation, "loss")
    Ot, Os = get(theory, "outlier"), get(simulation, "outlier")
    Tt, Ts = get(theory, "t_learn"), get(simulation, "t_learn")
    return dict(
        loss_rel=np.max(np.abs(Lt - Ls) / np.maximum(np.abs(Ls), eps), -1),
        outlier_abs=np.max(np.abs(Ot - Os), -1),
        outlier_final_rel=np.abs(Ot[..., -1] - Os[..., -1]) / np.maximum(np.abs(Os[..., -1]), eps),
        t_learn_rel=(Tt - Ts) / Ts,
    )
