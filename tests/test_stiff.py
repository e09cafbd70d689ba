"""Stiff gradient flow: StiffFlow against an independent implicit reference, the stability flag of
fixed-step RK4, the flow-curvature estimate, and the method/loss interfaces."""

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate as si
from jax.flatten_util import ravel_pytree

import jaxrnn
from jaxrnn.train import (
    train,
)  # the function: once a test imports the submodule, the lazy `jaxrnn.train` is the module
from jaxrnn.methods import RK4_LIMIT
from jaxrnn.status import STATUS_DIVERGED, STATUS_OK, STATUS_UNSTABLE_STEP
from jaxrnn.train import AbstractLoss, ExactLoss


def _take(tree, i):
    return jax.tree.map(lambda x: x[i : i + 1], tree)


def _radau_reference(net, target, eta, t_eval):
    """Gradient flow d theta/dt = -eta R grad L of one network by scipy's Radau IIA (order 5, exact
    Jacobian from jax.jacfwd) at rtol 1e-10: an implicit reference independent of jaxrnn's methods."""
    theta0, unravel = ravel_pytree(net)
    rates = ravel_pytree(
        jaxrnn.LinearRNN(jnp.ones_like(net.W), net.N * jnp.ones_like(net.u), net.N * jnp.ones_like(net.v))
    )[0]

    def loss(th):
        return jaxrnn.population_loss(unravel(th), target, doublings=24)

    f = jax.jit(lambda th: -eta * rates * jax.grad(loss)(th))
    jac = jax.jit(jax.jacfwd(f))
    sol = si.solve_ivp(
        lambda t, y: np.asarray(f(jnp.asarray(y))),
        (0, t_eval[-1]),
        np.asarray(theta0),
        method="Radau",
        t_eval=t_eval,
        rtol=1e-10,
        atol=1e-12,
        jac=lambda t, y: np.asarray(jac(jnp.asarray(y))),
    )
    assert sol.success
    return np.array([float(loss(jnp.asarray(y))) for y in sol.y.T]), sol.y[:, -1]


@pytest.mark.slow  # ~40 s on an idle core (the Radau reference with exact Jacobians, ~450 StiffFlow steps)
def test_stiff_flow_follows_an_implicit_reference_with_far_fewer_steps_than_rk4_needs():
    """N = 5, c = 0.04 and 0.08 (per-network eta), t = 0 -> 2, float64. The flow's top rate reaches
    ~0.25 eta / c^3 (> 2000: RK4 would need dt < 1.3e-3, >= 1500 steps); StiffFlow at its default
    rtol = 1e-7 follows the Radau reference to <= 1e-3 relative at every log point (measured 2.1e-4, at
    t = 0.8 in the learning transition; 2.2e-3 at rtol = 1e-6) in a few hundred steps."""
    M, T = 2, 2.0
    pop = jaxrnn.init_population(5, 0.3, 3, M)
    c, eta = np.array([0.04, 0.08]), np.array([1.0, 1.5])
    target = jaxrnn.leaky_integrator(c)
    res = train(pop, target, eta=eta, method=jaxrnn.StiffFlow(0.1), steps=20, n_log=21, compute_spectra=False)
    assert np.all(res.status == STATUS_OK)
    top = np.nanmax(res.curvature, axis=1)
    assert np.all(top > 0.1 * 0.25 * eta / c**3) and top[0] > 2000  # it is stiff
    rk4_steps = T * top[0] / RK4_LIMIT  # RK4's fewest stable steps for the stiffer network
    assert res.stats["accepted"][0] < rk4_steps / 5
    for i in range(M):
        ref_loss, ref_theta = _radau_reference(
            jax.tree.map(lambda x, i=i: x[i], pop), jaxrnn.leaky_integrator(c[i]), eta[i], res.t
        )
        assert ref_loss[-1] < 1e-2 * ref_loss[0]  # it learned: the curve spans the whole transition
        np.testing.assert_allclose(res.loss[i], ref_loss, rtol=1e-3, atol=0)
        theta = ravel_pytree(jax.tree.map(lambda x, i=i: x[i], res.final))[0]
        assert np.linalg.norm(theta - ref_theta) <= 1e-3 * np.linalg.norm(ref_theta)


def test_stiff_flow_network_does_not_depend_on_its_batch_mates(monkeypatch):
    """Per-network times and steps: a network trained in a population with a stiffer batch-mate and a
    diverging one takes its own steps and follows its trajectory alone to <= 1e-7 relative (measured
    7e-9), far below the method's own error at rtol = 1e-6. (Not bit-for-bit: Jacobian refreshes are
    population-wide, and a W-method's result depends on its lagged Jacobian at the truncation-error
    level.) The networks run free between synchronisation points: the population is advanced through
    blocks of 4 log points (10 intervals: 4 + 4 + 2, the last padded), the network alone through all
    10 at once, so equal trajectories also mean the blocks and their padding change nothing. A network
    that cannot be integrated (W - I not Hurwitz from the start) is frozen at its first log step, its
    remaining log points NaN, without touching the others."""
    pop = jaxrnn.init_population(6, 0.3, 3, 3)
    pop = eqx.tree_at(lambda p: p.W, pop, pop.W.at[2].add(1.5 * jnp.eye(6)))  # eigenvalues past 1
    c = np.array([0.04, 0.3, 0.3])
    kw = dict(method=jaxrnn.StiffFlow(0.1), steps=10, n_log=11, compute_spectra=False)
    monkeypatch.setattr(sys.modules["jaxrnn.train"], "_SNAPSHOT_BLOCK", 4)
    both = train(pop, jaxrnn.leaky_integrator(c), **kw)
    monkeypatch.undo()
    alone = train(_take(pop, 1), jaxrnn.leaky_integrator(c[1:2]), **kw)
    np.testing.assert_allclose(both.loss[1], alone.loss[0], rtol=1e-7)
    # the stiffness each network recorded as it passed its log points (its lagged Lanczos estimate); NaN
    # once frozen
    assert np.all(both.curvature[:2, 1:] > 0) and np.all(np.isnan(both.curvature[2, 1:]))
    assert abs(int(both.stats["accepted"][1]) - int(alone.stats["accepted"][0])) <= 1
    assert both.stats["accepted"][0] > 2 * both.stats["accepted"][1]  # the stiffer network took its own steps
    assert list(both.status) == [STATUS_OK, STATUS_OK, STATUS_DIVERGED] and both.diverged_step[2] == 0
    assert np.all(np.isnan(both.loss[2, 1:])) and np.all(np.isfinite(both.loss[:2]))


@pytest.mark.slow  # ~15 s on an idle core: 1200 RK4 steps at N = 64
def test_rk4_past_its_stability_edge_is_flagged_not_returned():
    """The issue's case: c = 0.03, N = 64, sigma = 0.1, network 0, RK4 dt = 1e-3 to t = 1.2 ends at a
    wrong L/L0 (~0.6 instead of 1e-3) without blowing up. It is flagged STATUS_UNSTABLE_STEP and its
    learning times are withheld (NaN)."""
    pop = jaxrnn.init_population(64, 0.1, 0, 1)
    res = train(
        pop,
        jaxrnn.leaky_integrator(0.03),
        method=jaxrnn.GradientFlow(1e-3),
        steps=1200,
        n_log=13,
        compute_spectra=False,
    )
    assert res.status[0] == STATUS_UNSTABLE_STEP
    assert np.isnan(res.t_learn[0]) and np.isnan(res.steps_to_learn[0])
    assert res.loss_rise[0] > 1e-3  # the loss rose: not a gradient flow


def test_rk4_flag_separates_stable_from_edge_steps():
    """N = 8, c = 0.1 (top rate ~0.25/c^3 = 250 once learned), t = 0 -> 3: dt = 8e-3 is inside RK4's
    stability interval (dt * rate ~ 2 < 2.785) and is not flagged; dt = 1.6e-2 is outside and is flagged."""
    pop = jaxrnn.init_population(8, 0.2, 1, 1)
    target = jaxrnn.leaky_integrator(0.1)
    ok = train(pop, target, method=jaxrnn.GradientFlow(8e-3), steps=376, n_log=5, compute_spectra=False)
    bad = train(pop, target, method=jaxrnn.GradientFlow(1.6e-2), steps=188, n_log=5, compute_spectra=False)
    assert ok.status[0] == STATUS_OK and bad.status[0] == STATUS_UNSTABLE_STEP
    top = np.nanmax(ok.curvature[0])
    assert 0.5 * 2.7853 < 8e-3 * top < 0.97 * 2.7853  # the stable run came close to the edge (a real test)
    assert ok.loss_rise[0] <= 1e-12 and np.isfinite(ok.t_learn[0])


def test_flow_curvature_equals_the_dense_hessian_spectrum():
    """Lanczos on Hessian-vector products (one-sided differences of the field, error ~1e-8) vs the
    eigenvalues of eta R^{1/2} H R^{1/2} with H from central differences (h = 1e-5) of the adjoint gradient
    (N = 4, 24 parameters, full Krylov space): top eigenvalue to 1e-6 relative (the reference's error is
    ~1e-9)."""
    from jaxrnn.methods import NetworkField, flow_curvature

    net = jax.tree.map(lambda x: x[0], jaxrnn.init_population(4, 0.5, 2, 1))
    # move the network towards the learned state so the top curvature is large
    net = jaxrnn.LinearRNN(net.W + 0.6 * jnp.outer(net.u, net.v) / (net.u @ net.v), net.u, net.v)
    target = jaxrnn.leaky_integrator(0.2)
    eta = 1.7
    theta, unravel = ravel_pytree(net)
    grad = jax.jit(
        lambda th: ravel_pytree(jaxrnn.population_loss_and_grad(unravel(th), target, doublings=16)[1])[0]
    )
    h, n = 1e-5, theta.shape[0]
    H = np.stack([(grad(theta + h * e) - grad(theta - h * e)) / (2 * h) for e in np.eye(n)], axis=1)
    r = np.sqrt(
        ravel_pytree(
            jaxrnn.LinearRNN(jnp.ones_like(net.W), 4 * jnp.ones_like(net.u), 4 * jnp.ones_like(net.v))
        )[0]
    )
    dense = np.linalg.eigvalsh(eta * r[:, None] * (H + H.T) / 2 * r[None, :])
    field = NetworkField(
        ExactLoss(doublings=16), target, jnp.asarray(eta), jax.random.key(0), ("W", "u", "v")
    )
    v0 = jax.random.normal(jax.random.key(1), theta.shape)
    top, vec = flow_curvature(field, net, v0, n)
    assert abs(float(top) / dense[-1] - 1) <= 1e-6
    top3, _ = flow_curvature(field, net, vec, 3)  # warm-started on its own Ritz vector: 3 steps suffice
    assert abs(float(top3) / dense[-1] - 1) <= 1e-6


class _HalfExactLoss(AbstractLoss):
    """L/2: a loss defined outside jaxrnn, through the interface alone."""

    def value_and_grad(self, model, target, key):
        loss, grad, tail = jaxrnn.population_loss_and_grad(model, target, doublings=14)
        return loss / 2, jax.tree.map(lambda g: g / 2, grad), tail < 1e-3

    def monitor(self, model, target):
        return jaxrnn.population_loss(model, target, doublings=14) / 2


def test_a_user_loss_through_the_interface():
    """Flow on L/2 with eta = 2 is the flow on L with eta = 1: same trajectory, loss halved. RK4 without the
    curvature check: the loss is what is under test here (StiffFlow's own tests train ExactLoss), and a
    StiffFlow program per loss cost ~10 s more compilation."""
    method = jaxrnn.GradientFlow(0.02, checks=0)
    pop = jaxrnn.init_population(6, 0.3, 0, 2)
    target = jaxrnn.leaky_integrator(0.3)
    kw = dict(method=method, steps=50, n_log=3, compute_spectra=False)
    half = train(pop, target, eta=2.0, loss=_HalfExactLoss(), **kw)
    full = train(pop, target, eta=1.0, loss=ExactLoss(doublings=14), **kw)
    np.testing.assert_allclose(2 * half.loss, full.loss, rtol=1e-7)
    assert np.all(full.loss[:, -1] < full.loss[:, 0])
