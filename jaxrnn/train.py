"""Train a whole population of linear RNNs in one compiled program.

`train` runs `vmap(step)` over the network axis inside a `lax.fori_loop`, jitted once per static
configuration, in chunks between log points so the host can record observables; memory does not
grow with the number of steps beyond the log.

Methods (what one step does; eta may differ per network):
- `GradientFlow(dt, solver)`: integrates d theta/dt = -eta R grad L with R = the scaling's rates
  (mean-field: 1, N, N for W, u, v) by explicit Euler or classical RK4 with step dt in flow time.
- `GradientDescent()`: theta <- theta - eta R grad L, one step per unit of "time" (SGD with a
  sampled loss).
- `OptaxOptimizer(make, **kwargs)`: any optax optimiser, built as
  `optax.inject_hyperparams(make)(learning_rate=eta, **kwargs)` so eta is per-network state; the
  gradient is multiplied by R first.

Losses: `ExactLoss` (stationary, adjoint gradients), `FiniteHorizonLoss(horizon)`,
`DiscreteLoss(dt)`, `SampledLoss(dt, batch, steps, burn_in)` (fresh noise each step from each
network's own key). Each also gives a deterministic monitor (the exact loss it estimates) for logs.

A network whose loss or gradient stops being finite, or whose W - I stops being Hurwitz (the
Lyapunov solver's tail does not vanish), is frozen at its last good parameters and flagged; the rest
of the population is unaffected.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .loss import GRAMIANS, check_gramian, discrete_loss, finite_horizon_loss, population_loss, population_loss_and_grad, sampled_loss
from .lyapunov import doublings_for
from .model import LinearRNN
from .observables import (
    charge,
    charge_drift,
    eigenvalue_learning_time,
    learning_time,
    operator_norm,
    outlier_eigenvalue,
)
from .status import STATUS_DIVERGED, STATUS_OK
from .targets import ExponentialSum

__all__ = [
    "GradientFlow",
    "GradientDescent",
    "OptaxOptimizer",
    "ExactLoss",
    "FiniteHorizonLoss",
    "DiscreteLoss",
    "SampledLoss",
    "TrainResult",
    "train",
    "STATUS_OK",
    "STATUS_DIVERGED",
]

log = logging.getLogger(__name__)

TAIL_TOLERANCE = 1e-3  # max|F^(2^K)| above this: the Lyapunov solve did not converge (not Hurwitz)
TRAINABLE = ("W", "u", "v")


# ----------------------------------------------------------------------------- losses


class ExactLoss(eqx.Module):
    """Exact stationary population loss with adjoint gradients (the default).

    `doublings=None` lets `train` choose log2(p / kappa) + 6 with kappa = min(c)/4, a quarter of the
    slowest decay rate the targets ask for (the outlier settles at decay rate c).
    `gramian="low_rank"` replaces the dense Smith doubling (~5 N^3-matmuls per doubling) by low-rank ADI
    (LUs at the shifts {1, c} plus O(N^2) per ADI step, at most `max_steps`): same loss and gradient to
    the solver tolerance, ~10-30x fewer flops at N ~ 1000; real-pole targets (`kind="integrator"`) only.
    """

    doublings: int | None = None
    shift: float = 1.0
    gramian: str = "dense"
    max_steps: int = 128

    def __check_init__(self):
        if self.gramian not in GRAMIANS:
            raise ValueError(f"ExactLoss.gramian must be one of {GRAMIANS}, got {self.gramian!r}")
        if isinstance(self.max_steps, bool) or int(self.max_steps) != self.max_steps or self.max_steps < 2:
            raise ValueError(f"ExactLoss.max_steps must be an integer >= 2, got {self.max_steps}")

    def resolved(self, targets) -> "ExactLoss":
        check_gramian(self.gramian, targets)
        if self.doublings is not None:
            return self
        c_min = float(np.min(np.asarray(targets.s_re)))
        return dataclasses.replace(self, doublings=doublings_for(c_min / 4, self.shift))

    def _options(self):
        return dict(doublings=self.doublings, shift=self.shift, gramian=self.gramian, max_steps=self.max_steps)

    def value_and_grad(self, model, target, key):
        loss, grad, tail = population_loss_and_grad(model, target, **self._options())
        return loss, grad, tail < TAIL_TOLERANCE

    def monitor(self, model, target):
        return population_loss(model, target, **self._options())


class FiniteHorizonLoss(eqx.Module):
    """Exact loss over [0, horizon] of a network started at rest (required for c = 0)."""

    horizon: float

    def __check_init__(self):
        if not (np.isfinite(self.horizon) and self.horizon > 0):
            raise ValueError(f"FiniteHorizonLoss.horizon must be finite and > 0, got {self.horizon}")

    def value_and_grad(self, model, target, key):
        loss, grad = jax.value_and_grad(finite_horizon_loss)(model, target, self.horizon)
        return loss, grad, jnp.asarray(True)

    def monitor(self, model, target):
        return finite_horizon_loss(model, target, self.horizon)


class DiscreteLoss(eqx.Module):
    """Exact stationary loss of the Euler-discretised network with step dt."""

    dt: float
    min_decay: float = 1e-3

    def __check_init__(self):
        if not (0 < self.dt <= 1):
            raise ValueError(f"DiscreteLoss.dt must be in (0, 1], got {self.dt}")

    def monitor(self, model, target):
        return discrete_loss(model, target, self.dt, min_decay=self.min_decay)

    def value_and_grad(self, model, target, key):
        loss, grad = jax.value_and_grad(self.monitor)(model, target)
        return loss, grad, jnp.asarray(True)


class SampledLoss(eqx.Module):
    """Sampled white-noise loss (BPTT through lax.scan); its monitor is the exact `DiscreteLoss`."""

    dt: float
    batch: int
    steps: int
    burn_in: int = 0

    def __check_init__(self):
        if not (0 < self.dt <= 1):
            raise ValueError(f"SampledLoss.dt must be in (0, 1], got {self.dt}")
        for name in ("batch", "steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"SampledLoss.{name} must be >= 1, got {getattr(self, name)}")
        if int(self.burn_in) < 0:
            raise ValueError(f"SampledLoss.burn_in must be >= 0, got {self.burn_in}")

    def value_and_grad(self, model, target, key):
        f = lambda m: sampled_loss(m, target, key, dt=self.dt, batch=self.batch, steps=self.steps, burn_in=self.burn_in)
        loss, grad = jax.value_and_grad(f)(model)
        return loss, grad, jnp.asarray(True)

    def monitor(self, model, target):
        return discrete_loss(model, target, self.dt)


# ----------------------------------------------------------------------------- methods


class GradientFlow(eqx.Module):
    """Integrate the gradient flow with a fixed step dt (flow time) by "euler" or "rk4"."""

    dt: float
    solver: str = "rk4"

    def __check_init__(self):
        if not (np.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"GradientFlow.dt must be finite and > 0, got {self.dt}")
        if self.solver not in ("euler", "rk4"):
            raise ValueError(f"GradientFlow.solver must be 'euler' or 'rk4', got {self.solver!r}")

    @property
    def time_per_step(self) -> float:
        return float(self.dt)


class GradientDescent(eqx.Module):
    """Discrete gradient descent theta <- theta - eta R grad L (SGD with a sampled loss)."""

    @property
    def time_per_step(self) -> float:
        return 1.0


class OptaxOptimizer(eqx.Module):
    """Any optax optimiser `make(learning_rate=..., **kwargs)`, with eta injected per network."""

    make: Callable = eqx.field(static=True)
    kwargs: tuple = eqx.field(static=True, default=())

    def __init__(self, make: Callable, **kwargs: Any):
        self.make = make
        self.kwargs = tuple(sorted(kwargs.items()))

    def optimizer(self, learning_rate):
        return optax.inject_hyperparams(self.make)(learning_rate=learning_rate, **dict(self.kwargs))

    @property
    def time_per_step(self) -> float:
        return 1.0


# ----------------------------------------------------------------------------- one network's step


class _State(eqx.Module):
    params: LinearRNN
    prev: LinearRNN  # last parameters whose loss evaluated cleanly
    opt_state: Any
    frozen: jax.Array
    diverged_step: jax.Array


def _tree_where(cond, a, b):
    return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


def _scaled_velocity(grad: LinearRNN, model: LinearRNN, eta, trainable):
    """-eta R grad L, with untrained parameters held fixed."""
    rates = dict(zip(TRAINABLE, model.rates))
    parts = {name: -eta * rates[name] * getattr(grad, name) if name in trainable else jnp.zeros_like(getattr(grad, name)) for name in TRAINABLE}
    return LinearRNN(parts["W"], parts["u"], parts["v"], scaling=model.scaling)


def _axpy(a, x: LinearRNN, y: LinearRNN) -> LinearRNN:
    return jax.tree.map(lambda xi, yi: yi + a * xi, x, y)


def _step(method, loss_fn, trainable, state: _State, target, eta, key, step_index):
    params = state.params
    k = jax.random.fold_in(key, step_index)

    def velocity(p):
        loss, grad, ok = loss_fn.value_and_grad(p, target, k)
        ok = ok & jnp.isfinite(loss) & jnp.all(jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grad)]))
        return _scaled_velocity(grad, p, eta, trainable), ok

    opt_state = state.opt_state
    if isinstance(method, GradientFlow) and method.solver == "rk4":
        h = method.dt
        k1, ok1 = velocity(params)
        k2, ok2 = velocity(_axpy(h / 2, k1, params))
        k3, ok3 = velocity(_axpy(h / 2, k2, params))
        k4, ok4 = velocity(_axpy(h, k3, params))
        incr = jax.tree.map(lambda a, b, c, d: (a + 2 * b + 2 * c + d) / 6, k1, k2, k3, k4)
        new, ok_base, ok = _axpy(h, incr, params), ok1, ok1 & ok2 & ok3 & ok4
    elif isinstance(method, OptaxOptimizer):
        v1, ok_base = velocity(params)
        # optax minimises: feed it R grad L = -v1/eta, i.e. the rate-scaled gradient
        scaled_grad = jax.tree.map(lambda x: -x / eta, v1)
        updates, opt_state_new = method.optimizer(1.0).update(scaled_grad, opt_state, params)
        new, ok = optax.apply_updates(params, updates), ok_base
        opt_state = _tree_where(ok & ~state.frozen, opt_state_new, opt_state)
    else:  # Euler gradient flow, or gradient descent (step = eta)
        h = method.dt if isinstance(method, GradientFlow) else 1.0
        v1, ok_base = velocity(params)
        new, ok = _axpy(h, v1, params), ok_base
    ok = ok & jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(new)]))
    advance = ok & ~state.frozen
    fallback = _tree_where(ok_base, params, state.prev)  # params themselves are bad if stage 1 failed
    newly_frozen = ~ok & ~state.frozen
    return _State(
        params=_tree_where(advance, new, _tree_where(state.frozen, params, fallback)),
        prev=_tree_where(advance, params, state.prev),
        opt_state=opt_state,
        frozen=state.frozen | ~ok,
        diverged_step=jnp.where(newly_frozen, step_index, state.diverged_step),
    )


@eqx.filter_jit
def _advance(method, loss_fn, trainable, state, targets, eta, keys, start, stop):
    """Steps start..stop-1 for the whole population (dynamic bounds: one compile for all chunks)."""
    step = jax.vmap(lambda s, tg, e, k, i: _step(method, loss_fn, trainable, s, tg, e, k, i), in_axes=(0, 0, 0, 0, None))
    return jax.lax.fori_loop(start, stop, lambda i, s: step(s, targets, eta, keys, i), state)


@eqx.filter_jit
def _observe(loss_fn, state: _State, targets, W0, C0):
    """Device-side observables at a log point (all matmul-only)."""
    p = state.params
    loss = jax.vmap(loss_fn.monitor)(p, targets)
    loss = jnp.where(state.frozen, jnp.nan, loss)
    N = p.W.shape[-1]
    C = charge(p.W, p.u, p.v, p.rates)
    return dict(
        loss=loss,
        dW_op=operator_norm(p.W - W0),
        uv=jnp.sum(p.u * p.v, -1) / N,
        u_norm=jnp.linalg.norm(p.u, axis=-1) / np.sqrt(N),
        v_norm=jnp.linalg.norm(p.v, axis=-1) / np.sqrt(N),
        charge_drift=charge_drift(C, C0, p.W, p.u, p.v, p.rates),
    )


# ----------------------------------------------------------------------------- driver


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What `train` logged. Arrays are numpy, network axis first, log-time axis second.

    - `t`, `step`: log times (flow time) and step indices, shape (n_log,).
    - `loss`: the exact loss the training objective estimates (stationary, finite-horizon or
      discrete), NaN once a network is frozen.
    - `outlier`: eigenvalue of W with the largest real part (oscillator: the upper member of the
      rightmost conjugate pair), complex.
    - `eigenvalues`: full spectra (n_net, n_log, N), if `keep_spectra`.
    - `dW_op`: |W(t) - W0|_op; `uv` = u.v/N; `u_norm`, `v_norm` = |u|/sqrt(N), |v|/sqrt(N);
      `charge_drift`: |C(t) - C(0)|_F relative to the size of C's terms.
    - `status`: 0 ok, 1 diverged (frozen); `diverged_step`: the step at which it froze (-1 if never).
    - `t_learn` (loss-based), `t_learn_eigenvalue` (outlier within 1% of 1 - s*), `steps_to_learn`.
    - `final`: the trained population (a stacked `LinearRNN`).
    """

    t: np.ndarray
    step: np.ndarray
    loss: np.ndarray
    outlier: np.ndarray
    dW_op: np.ndarray
    uv: np.ndarray
    u_norm: np.ndarray
    v_norm: np.ndarray
    charge_drift: np.ndarray
    status: np.ndarray
    diverged_step: np.ndarray
    t_learn: np.ndarray
    t_learn_eigenvalue: np.ndarray
    steps_to_learn: np.ndarray
    final: LinearRNN
    eigenvalues: np.ndarray | None = None

    def __getitem__(self, name):
        return getattr(self, name)


def _broadcast_target(target: ExponentialSum, M: int) -> ExponentialSum:
    if target.r_re.ndim == 1:
        return jax.tree.map(lambda x: jnp.broadcast_to(x, (M,) + x.shape), target)
    if target.r_re.shape[0] != M:
        raise ValueError(f"target population has {target.r_re.shape[0]} entries, the model population {M}")
    return target


def _log_steps(steps, n_log, log_steps):
    if log_steps is not None:
        ls = np.unique(np.asarray(log_steps, dtype=np.int64))
        if ls.size == 0 or ls[0] < 0 or ls[-1] > steps:
            raise ValueError(f"log_steps must lie in [0, steps={steps}], got {log_steps}")
        return ls if ls[0] == 0 else np.concatenate([[0], ls])
    return np.unique(np.round(np.linspace(0, steps, n_log)).astype(np.int64))


def train(
    model: LinearRNN,
    target: ExponentialSum,
    *,
    eta=1.0,
    method=None,
    loss=None,
    steps: int,
    n_log: int = 101,
    log_steps=None,
    trainable=TRAINABLE,
    keys=None,
    noise_seed: int = 0,
    keep_spectra: bool = False,
    compute_spectra: bool = True,
    callback: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train a population (a stacked `LinearRNN`, leading axis M) on `target`.

    **Arguments:**
    - `model`: the population; `target`: one target (broadcast) or a population of targets.
    - `eta`: learning rate, scalar or shape (M,).
    - `method`: `GradientFlow(dt, "rk4")` (default dt = 0.05), `GradientDescent()` or `OptaxOptimizer`.
    - `loss`: `ExactLoss()` (default), `FiniteHorizonLoss`, `DiscreteLoss` or `SampledLoss`.
    - `steps`: number of steps; `n_log` evenly spaced log points, or explicit `log_steps`.
    - `trainable`: subset of ("W", "u", "v").
    - `keys`: per-network PRNG keys for sampled noise (default `fold_in(key(noise_seed), i)`).
    - `compute_spectra`: eigenvalues of W at log points on the host (numpy), off the jitted path.
    - `callback(done_steps, steps)`: called between chunks (progress bars).

    **Returns:** a `TrainResult`.
    """
    method = GradientFlow(dt=0.05) if method is None else method
    loss = ExactLoss() if loss is None else loss
    if model.W.ndim != 3:
        raise ValueError(f"model must be a population with a leading network axis, got W of shape {model.W.shape}")
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")
    trainable = tuple(trainable)
    if not trainable or any(p not in TRAINABLE for p in trainable):
        raise ValueError(f"trainable must be a non-empty subset of {TRAINABLE}, got {trainable}")
    M = model.W.shape[0]
    eta_np = np.broadcast_to(np.asarray(eta, dtype=float), (M,))
    if np.any(~np.isfinite(eta_np)) or np.any(eta_np <= 0):
        raise ValueError(f"eta must be finite and > 0, got {eta}")
    targets = _broadcast_target(target, M)
    if isinstance(loss, (ExactLoss, DiscreteLoss, SampledLoss)) and np.any(np.asarray(targets.s_re) <= 0):
        raise ValueError("a target with c = 0 has infinite stationary loss: use FiniteHorizonLoss")
    if isinstance(loss, ExactLoss):
        loss = loss.resolved(targets)
    dtype = model.W.dtype
    eta_arr = jnp.asarray(eta_np, dtype)
    if keys is None:
        keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(noise_seed), i))(jnp.arange(M))
    ls = _log_steps(int(steps), n_log, log_steps)

    opt_state = (
        jax.vmap(lambda p, e: method.optimizer(e).init(p))(model, eta_arr)
        if isinstance(method, OptaxOptimizer)
        else jnp.zeros((M,), dtype)
    )
    state = _State(model, model, opt_state, jnp.zeros((M,), bool), jnp.full((M,), -1, jnp.int32))
    W0 = model.W
    C0 = charge(model.W, model.u, model.v, model.rates)

    logs: dict[str, list] = {}
    eigs = []
    for i, stop in enumerate(ls):
        if i > 0:
            state = _advance(
                method, loss, trainable, state, targets, eta_arr, keys, jnp.int32(ls[i - 1]), jnp.int32(stop)
            )
            if callback is not None:
                callback(int(stop), int(steps))
        obs = _observe(loss, state, targets, W0, C0)
        for k, val in obs.items():
            logs.setdefault(k, []).append(np.asarray(val))
        if compute_spectra:
            eigs.append(np.linalg.eigvals(np.asarray(state.params.W, dtype=np.float64)))

    t = ls * method.time_per_step
    out = {k: np.stack(v, axis=1) for k, v in logs.items()}
    if compute_spectra:
        spectra = np.stack(eigs, axis=1).astype(complex)  # (M, n_log, N); eigvals is real when all are
        outlier = outlier_eigenvalue(spectra, targets.kind)
    else:
        spectra, outlier = None, np.full((M, len(ls)), np.nan + 0j)
    status = np.where(np.asarray(state.frozen), STATUS_DIVERGED, STATUS_OK)
    t_learn = learning_time(t, out["loss"])
    target_eig = np.asarray(1.0 - (targets.s_re[:, 0] - 1j * np.abs(targets.s_im[:, 0])))
    t_eig = eigenvalue_learning_time(t, outlier, target_eig)
    if int(status.sum()):
        log.warning("%d of %d networks diverged and were frozen", int(status.sum()), M)
    return TrainResult(
        t=t,
        step=ls,
        outlier=outlier,
        status=status,
        diverged_step=np.asarray(state.diverged_step),
        t_learn=t_learn,
        t_learn_eigenvalue=t_eig,
        steps_to_learn=t_learn / method.time_per_step,
        final=state.params,
        eigenvalues=spectra if keep_spectra else None,
        **out,
    )
