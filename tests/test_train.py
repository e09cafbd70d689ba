"""Trainer: conservation laws, invariant subspaces, batching invariance, divergence isolation, learning."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxrnn
from jaxrnn.train import (
    train,
)  # the function: once a test imports the submodule, the lazy `jaxrnn.train` is the module
from jaxrnn.train import STATUS_DIVERGED, STATUS_OK


def _take(tree, i):
    return jax.tree.map(lambda x: x[i : i + 1], tree)


# `checks=0`: these tests are about trajectories, not the edge-of-stability check, whose Lanczos program costs
# ~6 s of compilation per configuration; that check is tested in tests/test_stiff.py


def test_gradient_flow_conserves_the_charge():
    pop = jaxrnn.init_population(12, 0.5, 0, 3)
    res = train(
        pop,
        jaxrnn.leaky_integrator(0.3),
        method=jaxrnn.GradientFlow(0.005, "rk4", checks=0),
        steps=400,
        n_log=5,
        compute_spectra=False,
    )
    assert np.all(res.loss[:, -1] < 0.5 * res.loss[:, 0])  # it did learn
    assert np.max(res.charge_drift) <= 1e-6
    # Euler with a large step conserves it only to O(step^2): a visible drift
    coarse = train(
        pop,
        jaxrnn.leaky_integrator(0.3),
        method=jaxrnn.GradientFlow(0.05, "euler", checks=0),
        steps=40,
        n_log=2,
        compute_spectra=False,
    )
    assert np.max(coarse.charge_drift) > 1e3 * np.max(res.charge_drift)


def test_sigma_zero_weights_stay_in_span_of_u0_v0():
    pop = jaxrnn.init_population(16, 0.0, 3, 2)
    res = train(
        pop,
        jaxrnn.damped_oscillator(0.2, 1.0),
        method=jaxrnn.GradientFlow(0.01, checks=0),
        steps=200,
        n_log=2,
        compute_spectra=False,
    )
    for i in range(2):
        Q, _ = np.linalg.qr(np.stack([np.asarray(pop.u[i]), np.asarray(pop.v[i])], 1))
        Pperp = np.eye(16) - Q @ Q.T
        W, u, v = (np.asarray(x[i]) for x in (res.final.W, res.final.u, res.final.v))
        assert np.linalg.norm(W) > 0.01  # it moved
        assert np.linalg.norm(Pperp @ W) <= 1e-10 * np.linalg.norm(W)
        assert np.linalg.norm(W @ Pperp) <= 1e-10 * np.linalg.norm(W)
        assert np.linalg.norm(Pperp @ u) <= 1e-10 * np.linalg.norm(u)
        assert np.linalg.norm(Pperp @ v) <= 1e-10 * np.linalg.norm(v)


def test_same_seed_gives_same_network_whatever_the_population():
    small = jaxrnn.init_population(8, 0.3, 7, 3)
    large = jaxrnn.init_population(8, 0.3, 7, 10)
    shuffled = jaxrnn.init_population(8, 0.3, 7, jnp.array([9, 2, 0, 1]))
    for a, b in zip(jax.tree.leaves(small), jax.tree.leaves(large)):
        np.testing.assert_array_equal(a, b[:3])
    np.testing.assert_array_equal(shuffled.W[1], small.W[2])
    np.testing.assert_array_equal(shuffled.W[0], large.W[9])


def test_population_equals_networks_trained_one_at_a_time_float32():
    """Per-network eta and c in one compile; float32; same as training each network alone."""
    M = 4
    pop = jaxrnn.init_population(10, 0.4, 1, M, dtype=jnp.float32)
    eta = np.array([1.0, 0.5, 2.0, 1.5])
    c = np.array([0.3, 0.5, 0.4, 0.6])
    # one bound on the Smith doublings for every run: train would otherwise choose it from each run's
    # smallest c (10 at c = 0.3 and 0.4, 9 at 0.5 and 0.6), a static number, so the runs alone would need two
    # programs; the fast loss stops doubling once converged, so the bound does not change the numbers
    kw = dict(
        method=jaxrnn.GradientFlow(0.01, checks=0),
        loss=jaxrnn.ExactLoss(doublings=10),
        steps=100,
        n_log=3,
        compute_spectra=False,
    )
    together = train(pop, jaxrnn.leaky_integrator(c, dtype=jnp.float32), eta=eta, **kw)
    assert together.loss.dtype == np.float32
    for i in range(M):
        alone = train(
            _take(pop, i), jaxrnn.leaky_integrator(c[i : i + 1], dtype=jnp.float32), eta=eta[i], **kw
        )
        # the loss is a difference of O(1/c) terms (int k*^2 = 1/(2c)): compare at float32 resolution of
        # those terms (~16 eps of 1/(2c)), not of the loss itself
        np.testing.assert_allclose(together.loss[i], alone.loss[0], rtol=0, atol=2e-6 / (2 * c[i]))
        for a, b in zip(jax.tree.leaves(together.final), jax.tree.leaves(alone.final)):
            assert np.max(np.abs(a[i] - b[0])) <= 1e-6 * np.max(np.abs(b[0]))


def test_diverging_network_is_frozen_and_does_not_poison_its_batch():
    pop = jaxrnn.init_population(8, 0.3, 2, 3)
    eta = np.array([1.0, 400.0, 1.0])  # the middle one is far past the RK4 stability limit
    kw = dict(method=jaxrnn.GradientFlow(0.01), steps=60, n_log=4, compute_spectra=False)
    res = train(pop, jaxrnn.leaky_integrator(0.2), eta=eta, **kw)
    np.testing.assert_array_equal(res.status, [STATUS_OK, STATUS_DIVERGED, STATUS_OK])
    assert res.diverged_step[1] >= 0 and res.diverged_step[0] == -1
    assert np.isnan(res.loss[1, -1]) and np.all(np.isfinite(res.loss[[0, 2]]))
    assert all(
        np.all(np.isfinite(x[1])) for x in jax.tree.leaves(res.final)
    )  # frozen at finite, last good values
    # the batch runs the curvature check (a frozen network must not poison it either); alone, each
    # network only needs its trajectory, which the check does not change: no check, ~3 s less compilation
    alone_kw = {**kw, "method": jaxrnn.GradientFlow(0.01, checks=0)}
    for i in (0, 2):
        alone = train(_take(pop, i), jaxrnn.leaky_integrator(0.2), eta=eta[i], **alone_kw)
        np.testing.assert_allclose(res.loss[i], alone.loss[0], rtol=1e-12)


def test_optax_sgd_equals_gradient_descent():
    pop = jaxrnn.init_population(8, 0.3, 4, 2)
    target = jaxrnn.leaky_integrator(0.5)
    kw = dict(eta=np.array([0.05, 0.02]), steps=30, n_log=4, compute_spectra=False)
    gd = train(pop, target, method=jaxrnn.GradientDescent(), **kw)
    sgd = train(pop, target, method=jaxrnn.OptaxOptimizer(optax.sgd), **kw)
    np.testing.assert_allclose(gd.loss, sgd.loss, rtol=1e-12)
    assert np.all(gd.loss[:, -1] < gd.loss[:, 0])
    adam = train(
        pop,
        target,
        method=jaxrnn.OptaxOptimizer(optax.adam, b1=0.9),
        eta=0.01,
        steps=100,
        n_log=2,
        compute_spectra=False,
    )
    assert np.all(adam.loss[:, -1] < 0.5 * adam.loss[:, 0])


def test_sgd_on_sampled_loss_reduces_exact_discrete_loss():
    pop = jaxrnn.init_population(8, 0.2, 5, 2)
    loss = jaxrnn.SampledLoss(dt=0.1, batch=32, steps=100, burn_in=50)
    res = train(
        pop,
        jaxrnn.leaky_integrator(0.5),
        method=jaxrnn.GradientDescent(),
        loss=loss,
        eta=0.05,
        steps=150,
        n_log=3,
        compute_spectra=False,
    )
    assert np.all(res.loss[:, -1] < 0.3 * res.loss[:, 0])  # the logged loss is the exact L_dt


def test_training_only_W_keeps_u_and_v():
    pop = jaxrnn.init_population(8, 0.3, 6, 2)
    res = train(pop, jaxrnn.leaky_integrator(0.5), steps=20, n_log=2, trainable=("W",), compute_spectra=False)
    np.testing.assert_array_equal(res.final.u, pop.u)
    np.testing.assert_array_equal(res.final.v, pop.v)
    assert not np.allclose(res.final.W, pop.W)


def test_integrator_acceptance_N128_float32():
    """c = 0.1, sigma = 0.1, N = 128, exact loss: loss falls >= 100x and the outlier ends within 1% of 0.9."""
    pop = jaxrnn.init_population(128, 0.1, 0, 1, dtype=jnp.float32)
    res = train(
        pop,
        jaxrnn.leaky_integrator(0.1, dtype=jnp.float32),
        method=jaxrnn.GradientFlow(0.01, checks=0),
        steps=300,
        n_log=31,
    )
    assert res.loss[0, 0] / res.loss[0, -1] >= 100
    assert abs(res.outlier[0, -1] - 0.9) <= 0.01 * 0.9
    assert res.outlier[0, -1].imag == 0
    assert 0 < res.t_learn[0] < 3 and 0 < res.t_learn_eigenvalue[0] < 3
    np.testing.assert_allclose(res.steps_to_learn, res.t_learn / 0.01)


def test_oscillator_acceptance_conjugate_pair():
    """c = 0.1, w = 1: a conjugate pair ends within 1% of 0.9 +- 1.0i."""
    pop = jaxrnn.init_population(32, 0.1, 0, 1)
    res = train(
        pop,
        jaxrnn.damped_oscillator(0.1, 1.0),
        method=jaxrnn.GradientFlow(0.01, checks=0),
        steps=1200,
        n_log=25,
        keep_spectra=True,
    )
    lam = res.outlier[0, -1]
    assert abs(lam - (0.9 + 1.0j)) <= 0.01 * abs(0.9 + 1.0j)
    spectrum = res.eigenvalues[0, -1]
    assert np.min(np.abs(spectrum - np.conj(lam))) < 1e-6  # its conjugate is there too
    assert res.loss[0, 0] / res.loss[0, -1] >= 100


def test_perfect_integrator_trains_on_a_finite_horizon():
    """c = 0 with T = 50. Plain gradient flow is very stiff here (curvature ~ T^3, like 0.25/c^3 with
    c ~ 1/T), so train with Adam; the outlier goes to ~1, the perfect integrator's eigenvalue."""
    pop = jaxrnn.init_population(16, 0.1, 0, 1)
    loss = jaxrnn.FiniteHorizonLoss(50.0)
    res = train(
        pop,
        jaxrnn.perfect_integrator(),
        loss=loss,
        method=jaxrnn.OptaxOptimizer(optax.adam),
        eta=0.003,
        steps=200,
        n_log=5,
    )
    assert res.status[0] == STATUS_OK
    assert np.isclose(
        res.loss[0, 0],
        float(
            jaxrnn.finite_horizon_loss(jax.tree.map(lambda x: x[0], pop), jaxrnn.perfect_integrator(), 50.0)
        ),
    )
    assert res.loss[0, -1] < 0.02 * res.loss[0, 0]
    assert abs(res.outlier[0, -1] - 1.0) < 0.01


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=0), "steps must be a positive integer"),
        (dict(steps=10, eta=-1.0), "eta must be finite and > 0"),
        (dict(steps=10, trainable=("Q",)), "trainable"),
        (dict(steps=10, log_steps=[0, 20]), "log_steps"),
    ],
)
def test_bad_training_arguments_raise(kwargs, match):
    pop = jaxrnn.init_population(4, 0.1, 0, 2)
    with pytest.raises(ValueError, match=match):
        train(pop, jaxrnn.leaky_integrator(0.5), **kwargs)


def test_stationary_loss_refuses_c_zero():
    pop = jaxrnn.init_population(4, 0.1, 0, 2)
    with pytest.raises(ValueError, match="FiniteHorizonLoss"):
        train(pop, jaxrnn.perfect_integrator(), steps=5)


def test_low_rank_gramians_train_the_same_trajectory():
    """ExactLoss(gramian="low_rank") follows the dense solver's flow to 1e-9 (N = 32, sigma = 0.3).
    (dt = 0.02 to t = 0.8 is past RK4's stability edge at c = 0.1 once learned: both blew up alike
    before the stability check flagged it; dt = 0.01 to t = 0.4 is stable.)"""
    pop = jaxrnn.init_population(32, 0.3, 0, 2)
    kw = dict(method=jaxrnn.GradientFlow(0.01, "rk4", checks=0), steps=40, n_log=5, compute_spectra=False)
    dense = train(pop, jaxrnn.leaky_integrator(0.1), **kw)
    low = train(pop, jaxrnn.leaky_integrator(0.1), loss=jaxrnn.ExactLoss(gramian="low_rank"), **kw)
    assert np.all(low.status == 0) and np.all(dense.status == 0)
    np.testing.assert_allclose(low.loss, dense.loss, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(low.final.W), np.asarray(dense.final.W), atol=1e-10)


def test_exact_loss_options_are_checked_before_compiling():
    with pytest.raises(ValueError, match="ExactLoss.gramian"):
        jaxrnn.ExactLoss(gramian="adi")
    with pytest.raises(ValueError, match="ExactLoss.max_steps"):
        jaxrnn.ExactLoss(gramian="low_rank", max_steps=1)
    with pytest.raises(ValueError, match="kind='integrator'"):
        train(
            jaxrnn.init_population(8, 0.1, 0, 2),
            jaxrnn.damped_oscillator(0.1, 1.0),
            loss=jaxrnn.ExactLoss(gramian="low_rank"),
            steps=2,
        )


_BATCHED_SOLVES = """
import jax, numpy as np
jax.config.update("jax_enable_x64", True)
import jaxrnn
pop = jaxrnn.init_population(64, 0.3, 0, 4)
r = jaxrnn.train(pop, jaxrnn.leaky_integrator(0.1), method=jaxrnn.GradientFlow(0.01, "rk4"), steps=40, n_log=5)
assert np.all(np.isfinite(r.loss)), r.loss
"""


def test_batched_lapack_solves_do_not_deadlock():
    """Regression: jaxlib 0.10's CPU LAPACK kernels fan a batch out over XLA's intra-op pool and wait on
    it; the Cayley and resolvent solves, run concurrently, hung N >= 64, M >= 2 populations on a 2-core
    machine (a race: this configuration hung 3 of 3 runs before the fix, idle machine). The loss now
    orders them; run in a subprocess so a hang fails instead of stalling the suite."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _BATCHED_SOLVES], capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
