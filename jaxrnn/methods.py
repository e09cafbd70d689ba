"""Training methods: one interface, final concrete classes (as diffrax's solvers and controllers).

Every method advances a population from one log step to the next (each network on its own: vmapped, or on
CPU from N = 64 one network at a time, `_population.over_networks`):

- `AbstractMethod`: `time_per_step`, `init(params, eta)` (per-network method state) and
  `advance(...)` (the population from step `start` to `stop`).
- `AbstractFixedStepMethod`: one `step(field, params, state, i)` per step index, looped by a
  `lax.fori_loop` per network. Final: `GradientFlow(dt, "euler" | "rk4")`, `GradientDescent()`, `OptaxOptimizer`.
- `StiffFlow(dt, rtol, ...)`: adaptive, linearly implicit gradient flow (Rosenbrock-W, see its doc);
  each network has its own time and step and runs free through a block of log points
  (`advance_through`, `free_running`), recording its state as it lands on each.

The gradient-flow field is d theta/dt = -eta R grad L (R = rates per block, 0 on untrained blocks).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar, cast

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Bool, Float, Int

from ._population import over_networks, per_network
from .curvature import lanczos_extremes
from .model import LinearRNN
from .stability import EULER_LIMIT, RK4_LIMIT

__all__ = [
    "AbstractMethod",
    "AbstractFixedStepMethod",
    "GradientFlow",
    "GradientDescent",
    "OptaxOptimizer",
    "StiffFlow",
    "LogSnapshots",
    "RK4_LIMIT",
    "EULER_LIMIT",
]

TRAINABLE = ("W", "u", "v")


def _finite(tree) -> Bool[Array, ""]:
    return jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def _tree_where(cond, a, b):
    return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


def _axpy(a, x, y):
    return jax.tree.map(lambda xi, yi: yi + a * xi, x, y)


class NetworkField(eqx.Module):
    """The training field of one network: loss, target, eta, noise key, trained blocks.

    `velocity(params, i)` = (-eta R grad L, L, ok), with `ok` false when the loss says its value is
    unreliable (e.g. W - I not Hurwitz) or anything is not finite. `flat()` gives the same field in
    the flat coordinates y = R^{-1/2} theta (theta on untrained entries), where its Jacobian
    -eta R^{1/2} H R^{1/2} is symmetric.
    """

    loss: Any = eqx.field(static=True)  # an AbstractLoss (hashable: its options are plain numbers)
    target: Any
    eta: Float[Array, ""]
    key: Any
    trainable: tuple = eqx.field(static=True)

    def velocity(self, params: LinearRNN, i=0):
        k = jax.random.fold_in(self.key, i)
        loss, grad, ok = self.loss.value_and_grad(params, self.target, k)
        ok = ok & jnp.isfinite(loss) & _finite(grad)
        rates = dict(zip(TRAINABLE, params.rates))
        parts = {
            n: -self.eta * rates[n] * getattr(grad, n)
            if n in self.trainable
            else jnp.zeros_like(getattr(grad, n))
            for n in TRAINABLE
        }
        return LinearRNN(parts["W"], parts["u"], parts["v"], scaling=params.scaling), loss, ok

    def sqrt_rates(self, params: LinearRNN) -> Float[Array, " n"]:
        r = dict(zip(TRAINABLE, params.rates))
        parts = [
            jnp.full(getattr(params, n).shape, np.sqrt(r[n]) if n in self.trainable else 0.0, params.W.dtype)
            for n in TRAINABLE
        ]
        return ravel_pytree(LinearRNN(*parts, scaling=params.scaling))[0]


class _FlatField(eqx.Module):
    """One network's flow in y = R^{-1/2} theta: y' = g(y) = -eta R^{1/2} grad L(theta(y))."""

    field: NetworkField
    r: Float[Array, " n"]  # R^{1/2} per entry, 0 on untrained entries
    unravel: Callable = eqx.field(static=True)

    @staticmethod
    def build(field: NetworkField, params: LinearRNN):
        theta, unravel = ravel_pytree(params)
        return _FlatField(field, field.sqrt_rates(params), unravel), theta

    def to_y(self, theta):
        return jnp.where(self.r > 0, theta / jnp.where(self.r > 0, self.r, 1), theta)

    def to_theta(self, y):
        return jnp.where(self.r > 0, self.r * y, y)

    def g(self, y):
        v, loss, ok = self.field.velocity(self.unravel(self.to_theta(y)))
        gv = ravel_pytree(v)[0]
        return jnp.where(self.r > 0, gv / jnp.where(self.r > 0, self.r, 1), 0.0), loss, ok

    def minus_jac(self, y, paired: bool = False):
        """x -> -J x = eta R^{1/2} H R^{1/2} x (symmetric) at y, by one-sided differences of the field:
        (g(y) - g(y + e x)) / e with e = sqrt(machine eps) (1 + |y|), for unit x. One gradient per product
        (a forward-mode jvp of the adjoint gradient costs ~3); relative error ~sqrt(eps) (1e-8 in float64,
        3e-4 in float32), far inside what its users need: the edge-of-stability check's 3% margin, and
        StiffFlow's J_k (a W-method keeps its order with any J_k).

        `paired`: each product evaluates g(y) again beside g(y + e x), as one batch of two, so the compiled
        program holds one copy of the gradient instead of two (half the compile time, twice the gradients:
        for the rare edge-of-stability checks, where compiling costs more than running)."""
        e = jnp.sqrt(jnp.finfo(y.dtype).eps) * (1 + jnp.linalg.norm(y))
        if paired:

            def product(x):
                g = jax.vmap(lambda z: self.g(z)[0])(jnp.stack([y, y + e * x]))
                return (g[0] - g[1]) / e

            return product
        g0 = self.g(y)[0]
        return lambda x: (g0 - self.g(y + e * x)[0]) / e


def flow_curvature(field: NetworkField, params: LinearRNN, v0, iterations: int):
    """Top eigenvalue of eta R^{1/2} H R^{1/2} (the flow's stiffest rate) by `iterations` Lanczos steps
    from v0 (a lower bound, tight for an isolated top eigenvalue), and its Ritz vector."""
    ff, theta = _FlatField.build(field, params)
    y = ff.to_y(theta)
    vals, vecs = lanczos_extremes(ff.minus_jac(y, paired=True), v0, iterations)
    return vals[-1], vecs[-1]


# ----------------------------------------------------------------------------- interfaces


class LogSnapshots(eqx.Module):
    """What a free-running method records as a network passes a log step; axes (network, log point).

    - `params`: the network's parameters at the log step (a stacked `LinearRNN`);
    - `frozen`: whether it was frozen by then (its later rows repeat its last parameters);
    - `curvature`: the method's own top-curvature estimate there (NaN if none).
    """

    params: LinearRNN
    frozen: Bool[Array, "M k"]
    curvature: Float[Array, "M k"]


class AbstractMethod(eqx.Module):
    """A way of moving a population's parameters; `train` calls only this interface.

    - `time_per_step`: flow time of one unit of `steps` (what log times are measured in).
    - `init(params, eta)`: one network's method state (vmapped by `train`).
    - `advance(fields, state, start, stop)`: the whole population from step `start` to `stop`.
    - `advance_through(fields, state, start, stops, n)`: free-running methods only (`free_running`): the
      population through several log steps at once, each network recording its own `LogSnapshots`.
    - `is_flow`: whether it integrates the gradient flow (along which the loss cannot increase).
    - `one_at_a_time(N)`, `probes_loss(loss)`: how `advance` lays out the population and whether it leaves
      the loss at the block's end in the state (both False unless a method says otherwise).
    """

    is_flow: ClassVar[bool] = False
    needs_deterministic_loss: ClassVar[bool] = False
    # True: `train` calls `advance_through` over blocks of log points instead of `advance` per log point
    free_running: ClassVar[bool] = False

    @property
    @abc.abstractmethod
    def time_per_step(self) -> float: ...

    @abc.abstractmethod
    def init(self, params: LinearRNN, eta) -> Any: ...

    @abc.abstractmethod
    def advance(self, fields: NetworkField, state, start, stop) -> Any: ...

    def advance_through(self, fields: NetworkField, state, start, stops, n) -> tuple[Any, LogSnapshots]:
        """Free-running methods (`free_running = True`): the population from step `start` through the
        log steps `stops[:n]` (`stops` padded to a fixed length, so one compile serves every block), each
        network at its own pace, recording a `LogSnapshots` row as it passes each log step."""
        raise NotImplementedError(f"{type(self).__name__} is not free-running: train calls advance")

    def curvature_checks(self, n_log: int) -> tuple[set, int]:
        """Log-point indices at which `train` estimates the flow's top curvature, and Lanczos steps."""
        return set(), 0

    def recorded_curvature(self, mstate):
        """A top-curvature estimate the method keeps itself (per network), or None."""
        return None

    def unstable(self, curvature, loss_rise, dtype):
        """Per network: may the step have been past the method's stability (the result wrong)?"""
        return np.zeros(np.shape(loss_rise)[:1], bool)

    def stats(self, mstate, steps_done: int) -> dict:
        """Per-network cost counters (numpy), at least `grads` (gradient evaluations)."""
        return {}

    def one_at_a_time(self, N: int) -> bool:
        """Whether `advance` runs each network on its own (`_population.over_networks`), so the loss can take
        real branches per network (`ExactLoss.resolved`)."""
        return False

    def probes_loss(self, loss) -> bool:
        """Whether `advance` leaves the loss at the block's end in the state (`end_loss`), so `train` logs it
        instead of evaluating `loss.monitor`."""
        return False


class AbstractFixedStepMethod(AbstractMethod):
    """One update per step index: `step(field, params, method_state, i)` ->
    (new params, new method state, loss at params, ok at params, ok for the whole step)."""

    @abc.abstractmethod
    def step(
        self, field: NetworkField, params: LinearRNN, mstate, i, probe: Any = False
    ) -> tuple[LinearRNN, Any, Array, Array, Array]:
        """`probe` (a traced bool, or False): only the loss at `params` is wanted, the update is discarded,
        so a method may skip the rest of its work (RK4 runs its first stage only)."""

    def init(self, params, eta):
        return jnp.zeros((), params.W.dtype)

    def advance(self, fields, state, start, stop):
        from .train import _guarded_step  # the freeze-and-flag wrapper shared by all fixed-step methods

        probed = self.probes_loss(fields.loss)
        end = stop + 1 if probed else stop

        def one_network(field, s):  # all the block's steps: on CPU from N = 64 the network stays in cache
            body = lambda i, s: _guarded_step(self, field, s, i, probe=(i == stop) if probed else False)
            return jax.lax.fori_loop(start, end, body, s)

        return over_networks(one_network, state.params.W.shape[-1], fields, state)

    def one_at_a_time(self, N: int) -> bool:
        return per_network(N)

    def probes_loss(self, loss) -> bool:
        # a deterministic loss's value is its monitor: one more iteration at `stop`, a probe whose update is
        # discarded, leaves the loss at the block's end for the log point, from the step's own compiled code
        # (no monitor program to compile; a sampled loss's monitor is another function)
        return loss.deterministic


# ----------------------------------------------------------------------------- fixed-step methods


class GradientFlow(AbstractFixedStepMethod):
    """Integrate the gradient flow with a fixed step dt (flow time) by "euler" or classical "rk4".

    The reference method, exact as dt -> 0 (RK4 error O(dt^4)); stable only while
    dt * eta * lambda_max(R^{1/2} H R^{1/2}) < `limit` (RK4 2.785, Euler 2). `train` checks that at
    `checks` log points spread over the run (always the last) with `lanczos` Lanczos steps (warm-started;
    0 turns the check off; ~15 gradients each) and, at every step for free, watches the loss, which the
    flow can only decrease: a run whose step reaches `edge` x limit (RK4: |R(z)| >= 0.88 for the top
    mode, where the exact flow damps it by exp(z)), or whose loss rises by more than rounding, gets
    status `STATUS_UNSTABLE_STEP` (its results may be wrong).
    """

    dt: float
    solver: str = "rk4"
    lanczos: int = 6
    checks: int = 8
    edge: float = 0.97
    is_flow: ClassVar[bool] = True

    def __check_init__(self):
        if not (np.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"GradientFlow.dt must be finite and > 0, got {self.dt}")
        if self.solver not in ("euler", "rk4"):
            raise ValueError(f"GradientFlow.solver must be 'euler' or 'rk4', got {self.solver!r}")
        for name in ("lanczos", "checks"):
            val = getattr(self, name)
            if isinstance(val, bool) or int(val) != val or val < 0:
                raise ValueError(f"GradientFlow.{name} must be an integer >= 0, got {val}")
        if not (0 < self.edge <= 1):
            raise ValueError(f"GradientFlow.edge must be in (0, 1], got {self.edge}")

    @property
    def time_per_step(self) -> float:
        return float(self.dt)

    @property
    def limit(self) -> float:
        return RK4_LIMIT if self.solver == "rk4" else EULER_LIMIT

    def curvature_checks(self, n_log):
        if self.lanczos == 0 or self.checks == 0:
            return set(), 0
        # linspace from the end: one check is the last log point, two or more include both ends
        idx = np.unique(np.round(np.linspace(n_log - 1, 0, self.checks)).astype(int))
        return set(idx.tolist()), int(self.lanczos)

    def unstable(self, curvature, loss_rise, dtype):
        """At the edge: dt * curvature >= edge * limit at a checked log point, or a loss rise per step of
        more than 10 sqrt(eps) relative (1.5e-7 in float64, 3.5e-3 in float32; a stable run has none)."""
        flag = loss_rise > 10 * np.sqrt(np.finfo(np.dtype(dtype)).eps)
        if curvature is not None:
            top = np.max(np.where(np.isfinite(curvature), curvature, -np.inf), axis=1)
            flag = flag | (top * self.dt >= self.edge * self.limit)
        return flag

    def stats(self, mstate, steps_done):
        return {"grads": np.full(np.shape(mstate)[:1], (4 if self.solver == "rk4" else 1) * steps_done)}

    def step(self, field, params, mstate, i, probe=False):
        h = self.dt
        if self.solver == "euler":
            k1, loss, ok1 = field.velocity(params, i)
            return _axpy(h, k1, params), mstate, loss, ok1, ok1
        # the four stages share one traced velocity inside a loop, k_j = f(y + a_j h k_{j-1}) with
        # a = (0, 1/2, 1/2, 1) (stage 1 evaluates at y + 0 * 0 = y exactly): the compiled step holds one copy
        # of the loss gradient instead of four. Same arithmetic in the same order as the unrolled form (acc
        # starts at 0 and 0 + 1 * k1 = k1 exactly: bit-identical results); weakly typed scalars keep a
        # float32 population float32.

        def stage(j, carry):
            k, acc, loss, ok1, ok = carry
            a = jnp.where(j == 0, 0.0, jnp.where(j == 3, h, h / 2))
            k, loss_j, ok_j = field.velocity(_axpy(a, k, params), i)
            first = j == 0
            loss, ok1 = jnp.where(first, loss_j, loss), jnp.where(first, ok_j, ok1)
            acc = _axpy(jnp.where(first | (j == 3), 1.0, 2.0), k, acc)
            return k, acc, loss, ok1, ok & ok_j

        zeros = jax.tree.map(jnp.zeros_like, params)
        loss0 = jnp.zeros((), params.W.dtype)
        init = (zeros, zeros, loss0, jnp.array(True), jnp.array(True))
        stages = 4 if probe is False else jnp.where(probe, 1, 4)  # a probe needs stage 1's loss only
        _, acc, loss, ok1, ok = jax.lax.fori_loop(0, stages, stage, init)
        incr = jax.tree.map(lambda a: a / 6, acc)  # (k1 + 2 k2 + 2 k3 + k4) / 6, summed in that order
        return _axpy(h, incr, params), mstate, loss, ok1, ok


class GradientDescent(AbstractFixedStepMethod):
    """Discrete gradient descent theta <- theta - eta R grad L (SGD with a sampled loss)."""

    @property
    def time_per_step(self) -> float:
        return 1.0

    def stats(self, mstate, steps_done):
        return {"grads": np.full(np.shape(mstate)[:1], steps_done)}

    def step(self, field, params, mstate, i, probe=False):
        v, loss, ok = field.velocity(params, i)
        return _axpy(1.0, v, params), mstate, loss, ok, ok


class OptaxOptimizer(AbstractFixedStepMethod):
    """Any optax optimiser `make(learning_rate=..., **kwargs)`, with eta injected per network.

    It is fed the rate-scaled gradient R grad L, built as
    `optax.inject_hyperparams(make)(learning_rate=eta, **kwargs)` so eta is per-network state.
    """

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

    def init(self, params, eta):
        return self.optimizer(eta).init(params)

    def stats(self, mstate, steps_done):
        return {"grads": np.full(np.shape(jax.tree.leaves(mstate)[0])[:1], steps_done)}

    def step(self, field, params, mstate, i, probe=False):
        v, loss, ok = field.velocity(params, i)
        scaled_grad = jax.tree.map(lambda x: -x / field.eta, v)  # optax minimises: feed it R grad L
        # optax's `Params` stub admits no eqx.Module, but any PyTree of arrays works
        updates, new_state = self.optimizer(1.0).update(scaled_grad, mstate, cast(optax.Params, params))
        return (
            cast(LinearRNN, optax.apply_updates(cast(optax.Params, params), updates)),
            _tree_where(ok, new_state, mstate),
            loss,
            ok,
            ok,
        )


# ----------------------------------------------------------------------------- stiff-aware flow

# ROS34PW2 (Rang & Angermann 2005): 4-stage Rosenbrock-W method, order 3 for *any* W (so a lagged,
# low-rank Jacobian keeps the order), L-stable with the exact Jacobian, embedded order 2.
_GAMMA = 4.3586652150845900e-01
_A = np.array(
    [
        [0, 0, 0, 0],
        [8.7173304301691801e-01, 0, 0, 0],
        [8.4457060015369423e-01, -1.1299064236484185e-01, 0, 0],
        [0, 0, 1, 0],
    ]
)
_G = np.array(
    [
        [0, 0, 0, 0],
        [-8.7173304301691801e-01, 0, 0, 0],
        [-9.0338057013044082e-01, 5.4180672388095326e-02, 0, 0],
        [2.4212380706095346e-01, -1.2232505839045147e00, 5.4526025533510214e-01, 0],
    ]
)
_B = np.array([2.4212380706095346e-01, -1.2232505839045147e00, 1.5452602553351020e00, 4.3586652150845900e-01])
_BHAT = np.array([3.7810903145819369e-01, -9.6042292212423178e-02, 5.0e-01, 2.1793326075422950e-01])


class _StiffState(eqx.Module):
    t: Float[Array, ""]
    t_prev: Float[Array, ""]  # time of the last accepted point (`prev`), for a rollback
    h: Float[Array, ""]
    err_prev: Float[Array, ""]
    U: Float[Array, "k n"]  # stiff directions (orthonormal, y-coordinates)
    lam: Float[Array, " k"]  # their rates (eigenvalues of -J, clipped at 0)
    refresh: Bool[Array, ""]
    since_refresh: Int[Array, ""]
    streak: Int[Array, ""]  # consecutive rejections
    accepted: Int[Array, ""]
    rejected: Int[Array, ""]
    grads: Int[Array, ""]  # gradient evaluations
    hvps: Int[Array, ""]  # Hessian-vector products (one-sided differences: one gradient each, +1 per refresh)
    iterations: Int[Array, ""]  # lockstep loop iterations (the population's, not this network's, cost)


class StiffFlow(AbstractMethod):
    """Adaptive, linearly implicit gradient flow: Rosenbrock-W (ROS34PW2) with a deflated Jacobian.

    In y = R^{-1/2} theta the flow is y' = g(y) with the symmetric Jacobian J = -eta R^{1/2} H R^{1/2}.
    Its stiffness sits in a few directions (near the learned state one rate ~0.25 eta / c^3, the next
    ~20 eta). Each step solves the stages

        (I - h gamma J_k) k_i = h g(y + sum_j a_ij k_j) + h J_k sum_j gamma_ij k_j,   y+ = y + sum_i b_i k_i,

    with J_k = -U diag(lam) U^T the top `rank` eigenpairs of -J from `lanczos` Lanczos steps of
    Hessian-vector products by one-sided differences of g (one gradient each; a forward-mode jvp costs
    ~3, and J_k need not be exact), so the solve is closed-form (Woodbury):
    (I + h gamma U lam U^T)^{-1} = I - U diag(h gamma lam / (1 + h gamma lam)) U^T. A W-method keeps
    its order 3 with any J_k; the stiff directions are damped as by an L-stable method, the rest is
    integrated explicitly (step bounded by ~2 / lam_{rank+1}). J_k is lagged: recomputed after two
    rejections in a row or a failed stage, and every `refresh_every` accepted steps (for the whole
    population at once: the batched Lanczos costs the same).

    Step control: the embedded order-2 solution gives err = |y+ - y+_hat|_2 / (atol + rtol |y|_2);
    accept if err <= 1, then h <- h * clip(0.9 err^(-0.7/3) err_prev^(0.4/3), 0.2, 5) (PI control);
    a non-finite or non-Hurwitz stage (the exact loss's tail check) rejects the step and quarters h.
    `dt` is the unit of `train`'s `steps` and log grid (t = steps * dt), not a step size.
    Accuracy: the loss curve's global error grows like rtol times the flow's sensitivity, largest in the
    fast learning transition: measured max relative error over all log points 2.1e-4 (N = 5, c = 0.04,
    tested against Radau at rtol 1e-10: <= 1e-3) at the default rtol = 1e-7, and 2.2e-3 there at
    rtol = 1e-6; 1.6e-4 on N = 64, c = 0.03 at rtol = 1e-6 (docs/core.md).
    """

    dt: float
    rtol: float = 1e-7
    atol: float = 1e-12
    rank: int = 2
    lanczos: int = 8
    refresh_every: int = 10
    max_iterations: int = 20000
    is_flow: ClassVar[bool] = True
    needs_deterministic_loss: ClassVar[bool] = True
    free_running: ClassVar[bool] = True

    def __check_init__(self):
        if not (np.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"StiffFlow.dt must be finite and > 0, got {self.dt}")
        if not (0 < self.rtol < 1):
            raise ValueError(f"StiffFlow.rtol must be in (0, 1), got {self.rtol}")
        if not (self.atol >= 0 and np.isfinite(self.atol)):
            raise ValueError(f"StiffFlow.atol must be finite and >= 0, got {self.atol}")
        for name, lo in (("rank", 1), ("lanczos", 2), ("refresh_every", 1), ("max_iterations", 1)):
            val = getattr(self, name)
            if isinstance(val, bool) or int(val) != val or val < lo:
                raise ValueError(f"StiffFlow.{name} must be an integer >= {lo}, got {val}")
        if self.rank > self.lanczos:
            raise ValueError(f"StiffFlow.rank must be <= StiffFlow.lanczos = {self.lanczos}, got {self.rank}")

    @property
    def time_per_step(self) -> float:
        return float(self.dt)

    def recorded_curvature(self, mstate):
        return np.asarray(mstate.lam[:, -1])

    def stats(self, mstate, steps_done):
        return {
            k: np.asarray(getattr(mstate, k)) for k in ("accepted", "rejected", "grads", "hvps", "iterations")
        }

    def init(self, params, eta):
        n = ravel_pytree(params)[0].shape[0]
        dtype = params.W.dtype
        z = jnp.zeros((), dtype)
        i0 = jnp.zeros((), jnp.int32)
        return _StiffState(
            z,
            z,
            z,
            jnp.ones((), dtype),
            jnp.zeros((self.rank, n), dtype),
            jnp.zeros((self.rank,), dtype),
            jnp.asarray(True),
            i0,
            i0,
            i0,
            i0,
            i0,
            i0,
            i0,
        )

    def _refresh(self, field, params, ms: _StiffState, key):
        ff, theta = _FlatField.build(field, params)
        y = ff.to_y(theta)
        noise = jax.random.normal(jax.random.fold_in(key, ms.accepted + ms.rejected), y.shape, y.dtype) * ff.r
        noise = noise / jnp.maximum(jnp.linalg.norm(noise), jnp.finfo(y.dtype).tiny)
        v0 = ms.U[-1] + 0.1 * noise  # warm start on the old stiffest direction
        # -J x by differences of the field: their ~sqrt(eps) error only perturbs J_k, and a W-method keeps
        # its order with any J_k: it affects the damping of the stiff mode, not the accuracy
        vals, vecs = lanczos_extremes(ff.minus_jac(y), v0, self.lanczos)
        lam = jnp.maximum(vals[-self.rank :], 0.0)
        return eqx.tree_at(
            lambda s: (s.U, s.lam, s.refresh, s.since_refresh, s.hvps),
            ms,
            (
                vecs[-self.rank :],
                lam,
                jnp.asarray(False),
                jnp.zeros((), jnp.int32),
                ms.hvps + self.lanczos + 1,
            ),
        )

    def _attempt(self, field, state, t_end):
        """One attempted step of one network (masked out once it has reached t_end or is frozen)."""
        ms: _StiffState = state.opt_state
        params = state.params
        active = (ms.t < t_end) & ~state.frozen
        ff, theta = _FlatField.build(field, params)
        y = ff.to_y(theta)
        dtype = y.dtype
        U, lam = ms.U, ms.lam
        remaining = t_end - ms.t
        A, G = jnp.asarray(_A, dtype), jnp.asarray(_G, dtype)

        def stage(carry, i):
            # one scan over the 4 stages: one gradient graph to compile, not four
            ks, h, first = carry
            gi, li, oki = ff.g(y + A[i] @ ks)
            # the first stage (at y itself) fixes h: the controller's step, or h0 = 0.01 |y| / |g(y)|
            h0 = jnp.clip(
                0.01 * jnp.linalg.norm(y) / jnp.maximum(jnp.linalg.norm(gi), jnp.finfo(dtype).tiny), 1e-6, 1.0
            )
            h_ctrl = jnp.where(ms.h > 0, ms.h, h0)
            h = jnp.where(i == 0, jnp.where(h_ctrl >= remaining * (1 - 1e-12), remaining, h_ctrl), h)
            d = h * _GAMMA * lam / (1 + h * _GAMMA * lam)
            corr = G[i] @ ks
            b = h * gi - h * U.T @ (lam * (U @ corr))  # h g(y_i) + h J_k sum_j gamma_ij k_j
            ks = ks.at[i].set(b - U.T @ (d * (U @ b)))  # (I - h gamma J_k)^{-1} b (Woodbury)
            first = jax.tree.map(lambda f, x: jnp.where(i == 0, x, f), first, (li, oki, h_ctrl))
            return (ks, h, first), oki

        first0 = (jnp.zeros((), dtype), jnp.asarray(True), jnp.zeros((), dtype))
        (ks, h, (loss0, ok0, h_ctrl)), oks = jax.lax.scan(
            stage, (jnp.zeros((4,) + y.shape, dtype), jnp.zeros((), dtype), first0), jnp.arange(4)
        )
        ok = jnp.all(oks)
        last = h_ctrl >= remaining * (1 - 1e-12)
        h = jnp.where(last, remaining, h_ctrl)
        y_new = y + jnp.asarray(_B, dtype) @ ks
        e = jnp.asarray(_B - _BHAT, dtype) @ ks
        scale = self.atol + self.rtol * jnp.maximum(jnp.linalg.norm(y), jnp.linalg.norm(y_new))
        err = jnp.linalg.norm(e) / scale
        ok = ok & jnp.isfinite(err) & jnp.all(jnp.isfinite(y_new))
        accept = active & ok & (err <= 1)
        reject = active & ~accept
        # the accepted point itself failed (its stages did not visit it): roll back to the last point
        rollback = active & ~ok0
        err_c = jnp.maximum(jnp.where(ok, err, 1e10), 1e-10)
        fac_acc = jnp.clip(0.9 * err_c ** (-0.7 / 3) * ms.err_prev ** (0.4 / 3), 0.2, 5.0)
        fac_rej = jnp.where(ok, jnp.clip(0.9 * err_c ** (-1 / 3), 0.2, 0.9), 0.25)
        # a last step shortened to reach t_end does not shrink the controller's step
        h_next = jnp.where(
            accept, jnp.where(last, jnp.maximum(h_ctrl, h * fac_acc), h * fac_acc), h * fac_rej
        )
        new_params = ff.unravel(ff.to_theta(y_new))
        ms_new = _StiffState(
            t=jnp.where(rollback, ms.t_prev, jnp.where(accept, jnp.where(last, t_end, ms.t + h), ms.t)),
            t_prev=jnp.where(accept, ms.t, ms.t_prev),
            h=jnp.where(active, h_next, ms.h),
            err_prev=jnp.where(accept, err_c, ms.err_prev),
            U=U,
            lam=lam,
            # a lagged J_k is fine for a W-method unless the stiff direction moved: refresh after two
            # rejections in a row, a failed (non-Hurwitz) stage, or every refresh_every accepted steps
            refresh=ms.refresh
            | (reject & ((ms.streak >= 1) | ~ok))
            | (active & (ms.since_refresh + 1 >= self.refresh_every)),
            since_refresh=ms.since_refresh + accept.astype(jnp.int32),
            streak=jnp.where(accept, 0, ms.streak + reject.astype(jnp.int32)),
            accepted=ms.accepted + accept.astype(jnp.int32),
            rejected=ms.rejected + reject.astype(jnp.int32),
            grads=ms.grads + 4 * active.astype(jnp.int32),
            hvps=ms.hvps,
            iterations=ms.iterations + 1,
        )
        # step underflow, or no step at all (h NaN where the gradient at the point itself is not finite):
        # give up on this network; it is frozen and flagged
        lost = active & ~(h_next >= 1e-12 * jnp.maximum(t_end, 1.0))
        params_next = _tree_where(accept, new_params, _tree_where(rollback, state.prev, params))
        counted = active & ok0 & jnp.isfinite(state.last_loss)
        rise = (loss0 - state.last_loss) / jnp.maximum(jnp.abs(state.last_loss), jnp.finfo(dtype).tiny)
        return eqx.tree_at(
            lambda s: (s.params, s.prev, s.opt_state, s.frozen, s.last_loss, s.loss_rise),
            state,
            (
                params_next,
                _tree_where(accept, params, state.prev),
                ms_new,
                state.frozen | lost,
                jnp.where(active & ok0, loss0, state.last_loss),
                jnp.where(counted, jnp.maximum(state.loss_rise, rise), state.loss_rise),
            ),
        )

    def advance(self, fields, state, start, stop):
        state, _ = self.advance_through(
            fields, state, start, jnp.reshape(jnp.asarray(stop, jnp.int32), (1,)), 1
        )
        return state

    def advance_through(self, fields, state, start, stops, n):
        """Every network integrates on from its own time, through the log times `stops[:n] * dt`: its
        last step before each is shortened to land on it, where it records a `LogSnapshots` row and goes
        on. The population waits for its slowest member once per call, not at every log point (with
        per-log-point synchronisation, a network in its fast learning transition held all others back
        at each log point: 416 lockstep iterations for ~240 attempts per network at c = 0.03, M = 16)."""
        dtype = state.opt_state.t.dtype
        times = jnp.asarray(stops, dtype) * self.dt
        K = times.shape[0]
        M = state.frozen.shape[0]
        n = jnp.asarray(n, jnp.int32)
        keys = jax.vmap(lambda k: jax.random.fold_in(k, 0x57F))(fields.key)

        def running(s, k):
            return (k < n) & ~s.frozen

        def refresh_some(s, pick):
            new = jax.vmap(self._refresh)(fields, s.params, s.opt_state, keys)
            # refresh every running network when any needs it: the Lanczos runs batched anyway, and this
            # keeps the networks' periodic refreshes in step (one batched refresh, not one per network)
            sel = lambda a, b: jnp.where(pick.reshape(pick.shape + (1,) * (a.ndim - 1)), a, b)
            return eqx.tree_at(lambda x: x.opt_state, s, jax.tree.map(sel, new, s.opt_state))

        def record(rows, k, reached, params, curvature):
            # one network's row k of (parameters, curvature) (vmapped: each network writes its own row)
            kc = jnp.minimum(k, K - 1)
            put = lambda b, x: b.at[kc].set(jnp.where(reached, x, b[kc]))
            return jax.tree.map(put, rows, (params, curvature))

        def body(carry):
            s, k, rows, it = carry
            run = running(s, k)
            s = jax.lax.cond(jnp.any(s.opt_state.refresh & run), refresh_some, lambda x, _: x, s, run)
            # a network done with this call's log steps gets t_end = its own t: inactive
            t_end = jnp.where(k < n, times[jnp.minimum(k, K - 1)], s.opt_state.t)
            s = jax.vmap(self._attempt)(fields, s, t_end)
            reached = run & ~s.frozen & (s.opt_state.t >= t_end)
            rows = jax.vmap(record)(rows, k, reached, s.params, s.opt_state.lam[:, -1])
            return s, k + reached.astype(jnp.int32), rows, it + 1

        def cond(carry):
            s, k, _, it = carry
            return jnp.any(running(s, k)) & (it < self.max_iterations * n)

        rows0 = (
            jax.tree.map(lambda x: jnp.zeros((M, K) + x.shape[1:], x.dtype), state.params),
            jnp.zeros((M, K), dtype),
        )
        k0 = jnp.zeros((M,), jnp.int32)
        s, k, (params, curvature), _ = jax.lax.while_loop(
            cond, body, (state, k0, rows0, jnp.zeros((), jnp.int32))
        )
        # networks that did not reach their last log step within max_iterations are frozen and flagged.
        # Rows k.. of a network are the ones it did not reach running (it froze, or they are padding): they
        # repeat its last parameters, marked frozen, with no curvature
        frozen = s.frozen | (k < n)
        newly = frozen & ~state.frozen  # flag the last log step it reached (or the call's start)
        last_stop = jnp.where(k > 0, jnp.asarray(stops, jnp.int32)[jnp.maximum(k - 1, 0)], start)
        rest = jnp.arange(K)[None, :] >= k[:, None]  # (M, K)
        fill = lambda b, x: jnp.where(rest.reshape(rest.shape + (1,) * (b.ndim - 2)), x[:, None], b)
        snaps = LogSnapshots(jax.tree.map(fill, params, s.params), rest, jnp.where(rest, jnp.nan, curvature))
        s = eqx.tree_at(
            lambda x: (x.frozen, x.diverged_step),
            s,
            (frozen, jnp.where(newly, last_stop.astype(s.diverged_step.dtype), s.diverged_step)),
        )
        return s, snaps
