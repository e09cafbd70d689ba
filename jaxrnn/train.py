"""Train a whole population of linear RNNs in one compiled program.

`train` runs the method's population step (every network on its own: `vmap` over the network axis, or
on CPU from N = 64 one network at a time, `_population.over_networks`) chunk by chunk between log
points, jitted once per static configuration, so the host can record observables; memory does not
grow with the number of steps beyond the log.

Methods (`jaxrnn.methods`; eta may differ per network), all behind `AbstractMethod`:
- `GradientFlow(dt, solver)`: integrates d theta/dt = -eta R grad L with R = the scaling's rates
  (mean-field: 1, N, N for W, u, v) by explicit Euler or classical RK4 with step dt in flow time. Its
  stability is checked at log points (top curvature against the step's limit) and at every step (the
  loss may not rise); a run at the edge is flagged `STATUS_UNSTABLE_STEP`.
- `StiffFlow(dt, rtol)`: the same flow, adaptive and linearly implicit in its few stiff directions
  (Rosenbrock-W with a Lanczos-deflated Jacobian); `dt` is only the log grid's unit.
- `GradientDescent()`: theta <- theta - eta R grad L, one step per unit of "time" (SGD with a
  sampled loss).
- `OptaxOptimizer(make, **kwargs)`: any optax optimiser, built as
  `optax.inject_hyperparams(make)(learning_rate=eta, **kwargs)` so eta is per-network state; the
  gradient is multiplied by R first.

Losses, all behind `AbstractLoss` (`value_and_grad`, `monitor`): `ExactLoss` (stationary, adjoint
gradients), `FiniteHorizonLoss(horizon)`, `DiscreteLoss(dt)`, `SampledLoss(dt, batch, steps, burn_in)`
(fresh noise each step from each network's own key). Each also gives a deterministic monitor (the
exact loss it estimates) for logs.

A network whose loss or gradient stops being finite, or whose W - I stops being Hurwitz (the
Lyapunov solver's tail does not vanish), is frozen at its last good parameters and flagged; the rest
of the population is unaffected.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import numbers
import time
from typing import Any, ClassVar
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool
from jax.typing import ArrayLike

from ._compile import COLD, filter_jit
from ._population import over_networks
from .loss import (
    check_gramian,
    discrete_loss,
    finite_horizon_loss,
    population_loss,
    population_loss_and_grad,
    population_loss_and_grad_fast,
    population_loss_fast,
    sampled_loss,
    sampled_loss_fft,
)
from .loss import GRAMIANS
from .lyapunov import DEFAULT_DOUBLINGS, INVERSES, doublings_for
from .methods import (
    EULER_LIMIT,
    RK4_LIMIT,
    AbstractFixedStepMethod,
    AbstractMethod,
    GradientDescent,
    GradientFlow,
    NetworkField,
    OptaxOptimizer,
    StiffFlow,
    _finite,
    _tree_where,
    flow_curvature,
)
from .model import LinearRNN
from .observables import (
    charge,
    charge_drift,
    eigenvalue_learning_time,
    init_outlier_tracker,
    learning_time,
    operator_norm,
    track_outlier,
)
from .status import STATUS_DIVERGED, STATUS_OK, STATUS_UNSTABLE_STEP
from .targets import ExponentialSum

__all__ = [
    "AbstractMethod",
    "AbstractFixedStepMethod",
    "GradientFlow",
    "StiffFlow",
    "GradientDescent",
    "OptaxOptimizer",
    "AbstractLoss",
    "ExactLoss",
    "FiniteHorizonLoss",
    "DiscreteLoss",
    "SampledLoss",
    "TrainResult",
    "train",
    "STATUS_OK",
    "STATUS_DIVERGED",
    "STATUS_UNSTABLE_STEP",
    "RK4_LIMIT",
    "EULER_LIMIT",
]

log = logging.getLogger(__name__)

TAIL_TOLERANCE = 1e-3  # max|F^(2^K)| above this: the Lyapunov solve did not converge (not Hurwitz)
TRAINABLE = ("W", "u", "v")


# ----------------------------------------------------------------------------- losses


class AbstractLoss(eqx.Module):
    """A training objective; `train` calls only this interface.

    - `value_and_grad(model, target, key)` -> (L, grad L as a `LinearRNN`, ok): `ok` false flags a value
      that cannot be trusted (e.g. the Lyapunov solve did not converge: W - I not Hurwitz).
    - `monitor(model, target)`: the deterministic exact loss the objective estimates (for logs).
    - `resolved(targets, one_at_a_time)`: the loss with options that depend on the targets, and on
      whether `train` evaluates it for one network at a time (`_population.over_networks`), filled in.
    - `stationary`: needs every target's c > 0; `deterministic`: no sampling noise (a smooth field).
    Concrete losses are final (options are plain numbers, so a loss is hashable and jit-static).
    """

    stationary: ClassVar[bool] = True
    deterministic: ClassVar[bool] = True

    @abc.abstractmethod
    def value_and_grad(self, model, target, key): ...

    @abc.abstractmethod
    def monitor(self, model, target): ...

    def resolved(self, targets, one_at_a_time: bool = False) -> AbstractLoss:
        return self


class ExactLoss(AbstractLoss):
    """Exact stationary population loss with adjoint gradients (the default).

    `doublings=None` lets `train` choose log2(p / kappa) + 6 with kappa = min(c)/4, a quarter of the
    slowest decay rate the targets ask for (the outlier settles at decay rate c).
    `gramian="low_rank"` replaces the dense Smith doubling (~5 N^3-matmuls per doubling) by low-rank ADI
    (LUs at the shifts {1, c} plus O(N^2) per ADI step, at most `max_steps`): same loss and gradient to
    the solver tolerance, ~10-30x fewer flops at N ~ 1000; real-pole targets (`kind="integrator"`) only.

    `fast=True` (default; dense Gramian only) runs `population_loss_and_grad_fast`: Smith doubling that
    stops once |F^(2^K)|_F^2 <= eps (at most `doublings`, so a non-Hurwitz W - I is flagged by the same
    tail test as the reference) on a Cayley transform with an automatic shift (`shift=None`; a float
    fixes it), the resolvents from the same powers of F. Same loss and gradient to rounding. It cannot
    be reverse-differentiated (a while loop), but forward mode works (the curvature check and `StiffFlow`
    take their Hessian-vector products as differences of its gradient). `fast=False` is the
    reference: exactly `doublings` doublings with shift 1 (or `shift`).

    `inverse` (fast path): how the Cayley transform inverts pI - A, "lu" or "neumann" (matmuls only, with
    an LU fallback: `lyapunov.cayley_resolvent`). `None` lets `train` choose: "neumann" where it runs the
    loss for one network at a time (CPU, N >= 64, fixed-step methods), where the fallback is a real
    branch; "lu" under `vmap`, where a branch would run both ways.
    """

    doublings: int | None = None
    shift: float | None = None
    gramian: str = "dense"
    max_steps: int = 128
    fast: bool = True
    inverse: str | None = None

    def __check_init__(self):
        if self.gramian not in GRAMIANS:
            raise ValueError(f"ExactLoss.gramian must be one of {GRAMIANS}, got {self.gramian!r}")
        if self.inverse is not None and self.inverse not in INVERSES:
            raise ValueError(f"ExactLoss.inverse must be None or one of {INVERSES}, got {self.inverse!r}")
        if isinstance(self.max_steps, bool) or int(self.max_steps) != self.max_steps or self.max_steps < 2:
            raise ValueError(f"ExactLoss.max_steps must be an integer >= 2, got {self.max_steps}")

    def resolved(self, targets, one_at_a_time: bool = False) -> ExactLoss:
        check_gramian(self.gramian, targets)
        inverse = self.inverse or ("neumann" if one_at_a_time else "lu")
        if self.doublings is not None:
            return dataclasses.replace(self, inverse=inverse)
        c_min = float(np.min(np.asarray(targets.s_re)))
        shift = 1.0 if self.shift is None else self.shift
        return dataclasses.replace(self, doublings=doublings_for(c_min / 4, shift), inverse=inverse)

    @property
    def _use_fast(self) -> bool:
        return bool(self.fast) and self.gramian == "dense"

    @property
    def _inverse(self) -> str:
        return self.inverse or "lu"

    def _max_doublings(self) -> int:
        if self.doublings is None:
            raise ValueError(
                "ExactLoss.doublings is unresolved: call loss.resolved(targets) first (train does)"
            )
        return int(self.doublings)

    def _reference(self, fn, model, target):
        """The reference path (dense Smith doubling at a fixed shift, or low-rank ADI)."""
        shift = 1.0 if self.shift is None else float(self.shift)
        doublings = DEFAULT_DOUBLINGS if self.doublings is None else int(self.doublings)
        return fn(
            model, target, doublings=doublings, shift=shift, gramian=self.gramian, max_steps=self.max_steps
        )

    def value_and_grad(self, model, target, key):
        if self._use_fast:
            loss, grad, tail = population_loss_and_grad_fast(
                model, target, max_doublings=self._max_doublings(), shift=self.shift, inverse=self._inverse
            )
        else:
            loss, grad, tail = self._reference(population_loss_and_grad, model, target)
        return loss, grad, tail < TAIL_TOLERANCE

    def monitor(self, model, target):
        if self._use_fast:
            return population_loss_fast(
                model, target, max_doublings=self._max_doublings(), shift=self.shift, inverse=self._inverse
            )
        return self._reference(population_loss, model, target)


class FiniteHorizonLoss(AbstractLoss):
    """Exact loss over [0, horizon] of a network started at rest (required for c = 0)."""

    horizon: float
    stationary: ClassVar[bool] = False

    def __check_init__(self):
        if not (np.isfinite(self.horizon) and self.horizon > 0):
            raise ValueError(f"FiniteHorizonLoss.horizon must be finite and > 0, got {self.horizon}")

    def value_and_grad(self, model, target, key):
        loss, grad = jax.value_and_grad(finite_horizon_loss)(model, target, self.horizon)
        return loss, grad, jnp.asarray(True)

    def monitor(self, model, target):
        return finite_horizon_loss(model, target, self.horizon)


class DiscreteLoss(AbstractLoss):
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


class SampledLoss(AbstractLoss):
    """Sampled white-noise loss; its monitor is the exact `DiscreteLoss`.

    `fft=True` (default): `sampled_loss_fft` (the network's impulse response convolved with the noise by
    an FFT: cost independent of the batch in the network part); `fft=False`: `sampled_loss` (BPTT through
    `lax.scan`). Same noise draws, same value and gradient to rounding.
    """

    dt: float
    batch: int
    steps: int
    burn_in: int = 0
    fft: bool = True
    deterministic: ClassVar[bool] = False

    def __check_init__(self):
        if not (0 < self.dt <= 1):
            raise ValueError(f"SampledLoss.dt must be in (0, 1], got {self.dt}")
        for name in ("batch", "steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"SampledLoss.{name} must be >= 1, got {getattr(self, name)}")
        if int(self.burn_in) < 0:
            raise ValueError(f"SampledLoss.burn_in must be >= 0, got {self.burn_in}")

    def value_and_grad(self, model, target, key):
        fn = sampled_loss_fft if self.fft else sampled_loss
        f = lambda m: fn(m, target, key, dt=self.dt, batch=self.batch, steps=self.steps, burn_in=self.burn_in)
        loss, grad = jax.value_and_grad(f)(model)
        return loss, grad, jnp.asarray(True)

    def monitor(self, model, target):
        return discrete_loss(model, target, self.dt)


# ----------------------------------------------------------------------------- one network's guarded step


class _State(eqx.Module):
    params: LinearRNN
    prev: LinearRNN  # last parameters whose loss evaluated cleanly
    opt_state: Any  # the method's state (optax state, StiffFlow's step control, or a dummy)
    frozen: jax.Array
    diverged_step: jax.Array
    last_loss: jax.Array  # loss at the start of the last step (NaN before the first)
    end_loss: jax.Array  # loss at `params` from the last block's closing probe (deterministic losses)
    loss_rise: jax.Array  # max over steps of (L_{i+1} - L_i) / |L_i|: > rounding means not a gradient flow
    curv_vec: jax.Array  # warm start of the curvature check (flat, y-coordinates)


def _guarded_step(
    method: AbstractFixedStepMethod, field: NetworkField, state: _State, i, probe: Any = False
) -> _State:
    """`method.step`, then: a network whose step is not finite (or not Hurwitz) is reverted to its last
    good parameters and frozen; the loss at each step's start feeds the monotonicity check. A `probe`
    (traced bool) evaluates the loss at the parameters without moving them (`end_loss`): it freezes a
    network exactly as the next step would (same index i, same checks on the loss)."""
    params = state.params
    new, mstate, loss, ok_base, ok = method.step(field, params, state.opt_state, i, probe)
    ok = jnp.where(probe, ok_base, ok & _finite(new))
    advance = ok & ~state.frozen & jnp.logical_not(probe)  # probe may be the Python False
    fallback = _tree_where(ok_base, params, state.prev)  # params themselves are bad if stage 1 failed
    newly_frozen = ~ok & ~state.frozen
    counted = ok_base & ~state.frozen & jnp.isfinite(state.last_loss)
    rise = (loss - state.last_loss) / jnp.maximum(jnp.abs(state.last_loss), jnp.finfo(loss.dtype).tiny)
    return _State(
        params=_tree_where(advance, new, _tree_where(state.frozen, params, fallback)),
        prev=_tree_where(advance, params, state.prev),
        opt_state=_tree_where(advance, mstate, state.opt_state),
        frozen=state.frozen | ~ok,
        diverged_step=jnp.where(newly_frozen, i, state.diverged_step),
        last_loss=jnp.where(ok_base & ~state.frozen, loss, state.last_loss),
        end_loss=jnp.where(probe, loss, state.end_loss),
        loss_rise=jnp.where(counted, jnp.maximum(state.loss_rise, rise), state.loss_rise),
        curv_vec=state.curv_vec,
    )


@filter_jit
def _advance(method: AbstractMethod, fields: NetworkField, state: _State, start, stop) -> _State:
    """Steps start..stop-1 for the whole population (dynamic bounds: one compile for all chunks)."""
    return method.advance(fields, state, start, stop)


def _default_keys(noise_seed, M: int):
    """fold_in(key(noise_seed), i) for the M networks (traced inside `_initial_state`: the seed is an
    argument, so one compiled program serves every seed)."""
    key = jax.random.key(noise_seed)
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(M))


@filter_jit(role=COLD)
def _initial_state(
    method: AbstractMethod, model: LinearRNN, eta, keys, noise_seed, track: bool, checked: bool
):
    """The trainer's state at step 0, the initial charge C0, the outlier tracker (None unless `track`), the
    learning rates as a device array and the per-network keys (`keys`, or from `noise_seed` if None):
    one compiled set-up program (as eager jnp calls, each op compiled a program of its own: ~40 of them,
    ~1.5 s of a first call). The curvature check's random start vector is drawn only if it will run."""
    M, N = model.W.shape[:2]
    dtype = model.W.dtype
    keys = _default_keys(noise_seed, M) if keys is None else keys
    opt_state = jax.vmap(method.init)(model, eta)
    n = N * N + 2 * N if checked else 0
    v0 = jax.random.normal(jax.random.key(0x5EED), (M, n), dtype)  # curvature-check start
    state = _State(
        model,
        model,
        opt_state,
        jnp.zeros((M,), bool),
        jnp.full((M,), -1, jnp.int32),
        jnp.full((M,), jnp.nan, dtype),
        jnp.full((M,), jnp.nan, dtype),
        jnp.full((M,), -jnp.inf, dtype),
        v0,
    )
    C0 = charge(model.W, model.u, model.v, model.rates)
    tracker = jax.vmap(init_outlier_tracker)(model.W, model.u, model.v) if track else None
    return state, C0, tracker, eta, keys


@filter_jit
def _advance_through(method: AbstractMethod, fields: NetworkField, state: _State, start, stops, n):
    """A free-running method through the log steps stops[:n] (stops padded: one compile for all blocks)."""
    return method.advance_through(fields, state, start, stops, n)


# a free-running method advances through at most this many log points per call, and their snapshots stay
# under _SNAPSHOT_BYTES; the block length is a power of two whatever n_log (padded): few compiled shapes
_SNAPSHOT_BLOCK = 32
_SNAPSHOT_BYTES = 256 * 2**20


def _snapshot_block(model: LinearRNN) -> int:
    """Log intervals per `advance_through` call (the population waits for its slowest network once per
    call): _SNAPSHOT_BLOCK, or the largest power of two whose snapshots fit in _SNAPSHOT_BYTES."""
    M, N = model.W.shape[:2]
    per_log_point = M * (N * N + 2 * N + 2) * model.W.dtype.itemsize
    fit = max(1, _SNAPSHOT_BYTES // per_log_point)
    return int(min(_SNAPSHOT_BLOCK, 2 ** int(np.log2(fit))))


@filter_jit
def _curvature(iterations: int, fields: NetworkField, state: _State):
    """Top eigenvalue of eta R^{1/2} H R^{1/2} per network (warm-started Lanczos), and its vector."""
    f = lambda fl, p, v: flow_curvature(fl, p, v, iterations)
    lam, vec = over_networks(f, state.params.W.shape[-1], fields, state.params, state.curv_vec)
    return jnp.where(state.frozen, jnp.nan, lam), vec


@filter_jit
def _observe(loss_fn, state: _State, targets, W0, C0, tracker, probed: bool):
    """Device-side observables at a log point (matmul/LU only, no eig); `tracker` (None: off) is the
    population's `OutlierState`, advanced by `track_outlier` (warm-started subspace iteration). `probed`:
    the loss is the step's own probe at these parameters (`state.end_loss`), else `loss_fn.monitor`."""
    p = state.params
    N = p.W.shape[-1]
    loss = state.end_loss if probed else over_networks(loss_fn.monitor, N, p, targets)
    loss = jnp.where(state.frozen, jnp.nan, loss)
    C = charge(p.W, p.u, p.v, p.rates)
    extra = {}
    if tracker is not None:
        theta, tracker, sep, res = jax.vmap(lambda W, s: track_outlier(W, s, targets.kind))(p.W, tracker)
        extra = dict(outlier=theta, outlier_separated=sep, outlier_residual=res)
    return tracker, dict(
        **extra,
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
      rightmost conjugate pair), complex, tracked on the device (`observables.track_outlier`: warm-started
      subspace iteration, no eig); NaN if `compute_spectra=False`.
    - `outlier_separated`: bool (n_net, n_log): the tracked outlier is clearly outside the bulk and
      converged (elsewhere it may be the bulk's edge: `t_learn_eigenvalue` ignores those points);
      `outlier_residual`: its relative Ritz residual. None if `compute_spectra=False`.
    - `eigenvalues`: full spectra (n_net, n_log, N), if `keep_spectra` (host `numpy.linalg.eigvals`).
    - `dW_op`: |W(t) - W0|_op; `uv` = u.v/N; `u_norm`, `v_norm` = |u|/sqrt(N), |v|/sqrt(N);
      `charge_drift`: |C(t) - C(0)|_F relative to the size of C's terms.
    - `status`: 0 ok, 1 diverged (frozen), 2 unstable step (a fixed-step flow at the edge of its
      stability, or whose loss rose: the trajectory may be wrong; its t_learn* are NaN);
      `diverged_step`: the step at which it froze (-1 if never; `StiffFlow`: the chunk's first step).
    - `t_learn` (loss-based), `t_learn_eigenvalue` (outlier within 1% of 1 - s*), `steps_to_learn`.
    - `final`: the trained population (a stacked `LinearRNN`).
    - `curvature`: flow methods: top eigenvalue of eta R^{1/2} H R^{1/2} (the flow's stiffest rate, a
      Lanczos lower bound) at log points, (n_net, n_log); for `GradientFlow` `dt * curvature / limit`
      >= `edge` flags the run. NaN where not computed. `loss_rise`: flow methods, the largest
      relative rise of the loss from one step to the next, (n_net,) (a gradient flow has none).
    - `stats`: per-network counters of the method, (n_net,) each: `StiffFlow`: accepted, rejected,
      gradient evaluations (`grads`) and Hessian-vector products (`hvps`); fixed steps: `grads`.
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
    curvature: np.ndarray | None = None
    loss_rise: np.ndarray | None = None
    stats: dict | None = None
    outlier_separated: np.ndarray | None = None
    outlier_residual: np.ndarray | None = None

    def __getitem__(self, name):
        return getattr(self, name)

    def to_xarray(self, sigma=None):
        """The result as an xarray Dataset in the sweep store's names (`results.train_result_to_xarray`)."""
        from .results import train_result_to_xarray

        return train_result_to_xarray(self, sigma)


def _broadcast_leaves(tree, M: int):
    """Each leaf stacked M times, broadcast by numpy (a target's leaves are a few numbers: a device transfer,
    no compiled program)."""
    return jax.tree.map(lambda x: jnp.asarray(np.broadcast_to(np.asarray(x), (M,) + x.shape)), tree)


def _broadcast_target(target: ExponentialSum, M: int) -> ExponentialSum:
    if not isinstance(target, ExponentialSum):
        raise ValueError(
            f"target must be an ExponentialSum (e.g. leaky_integrator(c)), got {type(target).__name__}"
        )
    if target.r_re.ndim == 1:
        return _broadcast_leaves(target, M)
    if target.r_re.ndim != 2 or target.r_re.shape[0] != M:
        raise ValueError(f"target population has {target.r_re.shape[0]} entries, the model population {M}")
    return target


def _log_steps(steps, n_log, log_steps):
    if log_steps is not None:
        ls = np.unique(np.asarray(log_steps, dtype=np.int64))
        if ls.size == 0 or ls[0] < 0 or ls[-1] > steps:
            raise ValueError(f"log_steps must lie in [0, steps={steps}], got {log_steps}")
        return ls if ls[0] == 0 else np.concatenate([[0], ls])
    if n_log is None:
        n_log = min(101, steps + 1)
    if isinstance(n_log, bool) or not isinstance(n_log, numbers.Integral) or not 2 <= int(n_log) <= steps + 1:
        raise ValueError(f"n_log must be an integer in [2, steps + 1 = {steps + 1}], got {n_log!r}")
    return np.unique(np.round(np.linspace(0, steps, n_log)).astype(np.int64))


# loss rises above this (relative, per step) are not rounding: 10 sqrt(eps) (1.5e-7 float64, 3.5e-3 float32)
_RISE_FACTOR = 10.0


def _check_model(model) -> None:
    if not isinstance(model, LinearRNN):
        raise ValueError(
            f"model must be a LinearRNN population (init_population), got {type(model).__name__}"
        )
    if np.ndim(model.W) != 3:
        raise ValueError(
            f"model must be a population with a leading network axis, got W of shape {np.shape(model.W)}"
        )
    dtypes = {name: np.dtype(getattr(model, name).dtype) for name in TRAINABLE}
    for name, dt in dtypes.items():
        if dt not in (np.float32, np.float64):
            raise ValueError(f"model.{name} must be float32 or float64, got {dt}")
        if dt == np.float64 and not jax.config.read("jax_enable_x64"):
            raise ValueError(
                f"model.{name} is float64 but jax_enable_x64 is off (JAX would silently compute in float32): "
                "call jax.config.update('jax_enable_x64', True) first, or pass float32 arrays"
            )
    if len(set(dtypes.values())) > 1:
        raise ValueError(f"model.W, model.u, model.v must share one dtype, got {dtypes}")
    finite = _finite_networks(model)  # (3, M)
    for name, good in zip(TRAINABLE, finite):
        if not good.all():
            nets = np.nonzero(~good)[0]
            raise ValueError(
                f"model.{name} must be finite: non-finite entries in networks {nets[:10].tolist()}"
            )


def _finite_networks(model: LinearRNN) -> np.ndarray:
    """Per block (W, u, v) and network: all entries finite, shape (3, M). Arrays in host memory (the CPU
    backend, numpy) are read in place by numpy; others by one compiled device reduction (works sharded; one
    program, not one per eager jnp op)."""
    on_host = all(
        isinstance(x, np.ndarray) or all(d.platform == "cpu" for d in x.devices())
        for x in (model.W, model.u, model.v)
    )
    if on_host:
        M = model.W.shape[0]
        return np.stack([np.isfinite(np.asarray(getattr(model, n))).reshape(M, -1).all(1) for n in TRAINABLE])
    return np.asarray(_finite_networks_on_device(model))


@filter_jit
def _finite_networks_on_device(model: LinearRNN) -> Bool[Array, "3 M"]:
    M = model.W.shape[0]
    return jnp.stack([jnp.all(jnp.isfinite(getattr(model, n)).reshape(M, -1), axis=1) for n in TRAINABLE])


def _check_keys(keys, M):
    arr = keys
    dtype = getattr(arr, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if arr.shape != (M,):
            raise ValueError(f"keys must hold one PRNG key per network, shape ({M},), got {arr.shape}")
        return arr
    arr = np.asarray(keys)
    if arr.dtype != np.uint32 or arr.shape != (M, 2):
        raise ValueError(
            f"keys must be typed PRNG keys of shape ({M},) or raw uint32 keys of shape ({M}, 2), "
            f"got {arr.dtype} {arr.shape}"
        )
    return jax.vmap(jax.random.wrap_key_data)(jnp.asarray(arr))


def train(
    model: LinearRNN,
    target: ExponentialSum,
    *,
    eta: float | ArrayLike = 1.0,
    method: AbstractMethod | None = None,
    loss: AbstractLoss | None = None,
    steps: int,
    n_log: int | None = None,
    log_steps=None,
    trainable=TRAINABLE,
    keys=None,
    noise_seed: int = 0,
    keep_spectra: bool = False,
    compute_spectra: bool = True,
    callback: Callable[[int, int], None] | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train a population (a stacked `LinearRNN`, leading axis M) on `target`.

    **Arguments** (each is checked, and a bad one raises ValueError naming it, before anything compiles):
    - `model`: the population (finite float32/float64 arrays; float64 needs `jax_enable_x64`).
    - `target`: one `ExponentialSum` (broadcast) or a population of M of them.
    - `eta`: learning rate, finite and > 0: a scalar or shape (M,).
    - `method`: an `AbstractMethod`: `GradientFlow(dt, "rk4")` (default dt = 0.05), `StiffFlow(dt)`,
      `GradientDescent()` or `OptaxOptimizer`.
    - `loss`: an `AbstractLoss`: `ExactLoss()` (default), `FiniteHorizonLoss`, `DiscreteLoss`, `SampledLoss`.
    - `steps`: number of steps (positive integer); `n_log` evenly spaced log points (an integer in
      [2, steps + 1]; default min(101, steps + 1)), or explicit `log_steps` in [0, steps].
    - `trainable`: non-empty subset of ("W", "u", "v").
    - `keys`: per-network PRNG keys for sampled noise, shape (M,) (default `fold_in(key(noise_seed), i)`).
    - `compute_spectra`: track the outlier eigenvalue at log points (on the device, no eig; False
      leaves `outlier` NaN); `keep_spectra` (needs it) also returns the full spectra, computed on the
      host by `numpy.linalg.eigvals` (only then is there a host eig).
    - `callback(done_steps, steps)`: called between chunks (progress bars).
    - `progress`: a tqdm bar over steps (the first chunk, which includes compilation, is timed apart).

    **Returns:** a `TrainResult`.
    """
    method = GradientFlow(dt=0.05) if method is None else method
    loss = ExactLoss() if loss is None else loss
    if not isinstance(method, AbstractMethod):
        raise ValueError(
            f"method must be an AbstractMethod (GradientFlow, StiffFlow, GradientDescent, OptaxOptimizer), "
            f"got {type(method).__name__}"
        )
    if not isinstance(loss, AbstractLoss):
        raise ValueError(
            f"loss must be an AbstractLoss (ExactLoss, FiniteHorizonLoss, DiscreteLoss, SampledLoss), "
            f"got {type(loss).__name__}"
        )
    _check_model(model)
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    steps = int(steps)
    if isinstance(trainable, str):
        trainable = (trainable,)
    trainable = tuple(trainable)
    if not trainable or any(p not in TRAINABLE for p in trainable) or len(set(trainable)) != len(trainable):
        raise ValueError(f"trainable must be a non-empty subset of {TRAINABLE}, got {trainable}")
    for name, val in (("keep_spectra", keep_spectra), ("compute_spectra", compute_spectra)):
        if not isinstance(val, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {val!r}")
    if keep_spectra and not compute_spectra:
        raise ValueError("keep_spectra=True needs compute_spectra=True")
    if callback is not None and not callable(callback):
        raise ValueError(
            f"callback must be None or callable(done_steps, steps), got {type(callback).__name__}"
        )
    if not isinstance(progress, (bool, np.bool_)):
        raise ValueError(f"progress must be True or False, got {progress!r}")
    if isinstance(noise_seed, bool) or not isinstance(noise_seed, numbers.Integral):
        raise ValueError(f"noise_seed must be an integer, got {noise_seed!r}")
    M, N = model.W.shape[:2]
    eta_in = np.asarray(eta)
    if (
        eta_in.ndim > 1
        or (eta_in.ndim == 1 and eta_in.shape != (M,))
        or not np.issubdtype(eta_in.dtype, np.number)
    ):
        raise ValueError(
            f"eta must be a number or an array of shape ({M},) (one per network), got shape {eta_in.shape}"
        )
    eta_np = np.broadcast_to(eta_in.astype(float), (M,))
    if np.any(~np.isfinite(eta_np)) or np.any(eta_np <= 0):
        raise ValueError(f"eta must be finite and > 0, got {eta}")
    targets = _broadcast_target(target, M)
    if loss.stationary and np.any(np.asarray(targets.s_re) <= 0):
        raise ValueError("a target with c = 0 has infinite stationary loss: use FiniteHorizonLoss")
    if method.needs_deterministic_loss and not loss.deterministic:
        raise ValueError(
            f"method {type(method).__name__} integrates a deterministic flow: use it with ExactLoss, "
            f"FiniteHorizonLoss or DiscreteLoss, not {type(loss).__name__}"
        )
    loss = loss.resolved(targets, one_at_a_time=method.one_at_a_time(N))
    ls = _log_steps(steps, n_log, log_steps)
    dtype = model.W.dtype
    keys = None if keys is None else _check_keys(keys, M)
    # fixed-step flows: warm-started Lanczos estimates at some log points; StiffFlow keeps its own (free)
    checked, iterations = method.curvature_checks(len(ls))
    state, C0, tracker, eta_arr, keys = _initial_state(
        method, model, eta_np.astype(dtype), keys, np.int64(noise_seed), bool(compute_spectra), bool(checked)
    )
    fields = NetworkField(loss, targets, eta_arr, keys, trainable)
    W0 = model.W

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(ls[-1]), unit="step", desc="train")
        t_chunk = [time.perf_counter()]

        def report(done, total):
            now = time.perf_counter()
            if bar.n == 0:  # the first chunk: compilation plus its steps
                bar.set_postfix_str(f"first chunk (compile) {now - t_chunk[0]:.1f}s")
            bar.update(done - bar.n)
            t_chunk[0] = now

    logs: dict[str, list] = {}
    eigs, curv = [], []
    block = _snapshot_block(model) if method.free_running else 1
    snaps = None
    # a method that probes the loss closes every block with an evaluation at its end (`end_loss`); the
    # start's loss comes from an empty block's probe
    probed = method.probes_loss(loss)
    if probed:
        state = _advance(method, fields, state, np.int32(ls[0]), np.int32(ls[0]))
    try:
        for i, stop in enumerate(ls):
            if i > 0 and (i - 1) % block == 0:
                # the next block of log points: one advance, or one advance_through (free-running)
                if method.free_running:
                    stops = ls[i : i + block]
                    padded = np.pad(stops, (0, block - len(stops)), mode="edge")
                    bounds = (np.int32(ls[i - 1]), padded.astype(np.int32), np.int32(len(stops)))
                    state, snaps = _advance_through(method, fields, state, *bounds)
                else:
                    state = _advance(method, fields, state, np.int32(ls[i - 1]), np.int32(stop))
                last = int(ls[min(i - 1 + block, len(ls) - 1)])
                if bar is not None:
                    jax.block_until_ready(state.params.W)
                    report(last, int(steps))
                if callback is not None:
                    callback(last, int(steps))
            view = state  # the population at this log point (a free-running method's: its snapshot)
            own = method.recorded_curvature(state.opt_state)
            if i > 0 and snaps is not None:
                j = (i - 1) % block
                params_j = jax.tree.map(lambda x, j=j: x[:, j], snaps.params)
                view = eqx.tree_at(lambda s: (s.params, s.frozen), state, (params_j, snaps.frozen[:, j]))
                own = np.asarray(snaps.curvature[:, j])
            tracker, obs = _observe(loss, view, targets, W0, C0, tracker, probed)
            for k, val in obs.items():
                logs.setdefault(k, []).append(np.asarray(val))
            if i in checked:
                lam, vec = _curvature(iterations, fields, state)
                state = eqx.tree_at(lambda s: s.curv_vec, state, vec)
                curv.append(np.asarray(lam))
            elif own is not None:
                curv.append(np.where(np.asarray(view.frozen), np.nan, own))
            elif checked:
                curv.append(np.full(M, np.nan))
            if keep_spectra:
                eigs.append(np.linalg.eigvals(np.asarray(view.params.W, dtype=np.float64)))
    finally:
        if bar is not None:
            bar.close()
    t = ls * method.time_per_step
    out = {k: np.stack(v, axis=1) for k, v in logs.items()}
    spectra = np.stack(eigs, axis=1).astype(complex) if keep_spectra else None  # (M, n_log, N)
    if compute_spectra:
        outlier, separated, residual = (
            out.pop("outlier"),
            out.pop("outlier_separated"),
            out.pop("outlier_residual"),
        )
    else:
        outlier, separated, residual = np.full((M, len(ls)), np.nan + 0j), None, None
    frozen = np.asarray(state.frozen)
    status = np.where(frozen, STATUS_DIVERGED, STATUS_OK)
    curvature = np.stack(curv, axis=1) if curv else None
    loss_rise = np.asarray(state.loss_rise) if method.is_flow else None
    unstable = method.unstable(curvature, np.asarray(state.loss_rise), dtype)
    status = np.where(~frozen & unstable, STATUS_UNSTABLE_STEP, status)
    t_learn = learning_time(t, out["loss"])
    target_eig = 1.0 - (np.asarray(targets.s_re)[:, 0] - 1j * np.abs(np.asarray(targets.s_im)[:, 0]))
    t_eig = eigenvalue_learning_time(t, outlier, target_eig, valid=separated)
    flagged = status == STATUS_UNSTABLE_STEP
    t_learn, t_eig = np.where(flagged, np.nan, t_learn), np.where(flagged, np.nan, t_eig)
    if int(frozen.sum()):
        log.warning("%d of %d networks diverged and were frozen", int(frozen.sum()), M)
    if int(flagged.sum()):
        log.warning(
            "%d of %d networks ran at the edge of the step's stability (status %d): their trajectories may "
            "be wrong; use a smaller dt or StiffFlow",
            int(flagged.sum()),
            M,
            STATUS_UNSTABLE_STEP,
        )
    stats = method.stats(state.opt_state, int(ls[-1]))
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
        eigenvalues=spectra,
        outlier_separated=separated,
        outlier_residual=residual,
        curvature=curvature,
        loss_rise=loss_rise,
        stats=stats,
        **out,
    )
