"""Observables: learning times on closed-form curves, operator norm, outlier selection, the charge."""

import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn
from jaxrnn.observables import (
    charge,
    eigenvalue_learning_time,
    learning_time,
    operator_norm,
    outlier_eigenvalue,
)


def test_learning_time_is_exact_for_exponential_decay():
    # L = exp(-r t) is linear in log L, so log-interpolation is exact: t = ln(100)/r
    t = np.linspace(0, 10, 7)
    rates = np.array([0.7, 1.3, 3.0])
    loss = np.exp(-rates[:, None] * t)
    np.testing.assert_allclose(learning_time(t, loss), np.log(100) / rates, rtol=1e-12)


def test_learning_time_nan_when_never_reached_and_other_thresholds():
    t = np.linspace(0, 1, 5)
    assert np.isnan(learning_time(t, np.exp(-t)))
    np.testing.assert_allclose(learning_time(t, np.exp(-4 * t), threshold=0.5), np.log(2) / 4, rtol=1e-12)


def test_eigenvalue_learning_time_interpolates_linearly():
    t = np.array([0.0, 1.0, 2.0])
    outlier = np.array([0.0, 0.8, 0.9])  # relative error to 0.9: 1, 0.111, 0
    expected = 1.0 + (0.111111111 - 0.01) / 0.111111111
    np.testing.assert_allclose(eigenvalue_learning_time(t, outlier, 0.9), expected, rtol=1e-6)


def test_operator_norm_matches_svd():
    """Lanczos on X^T X against the SVD: exact with k = N steps; with the default 16 steps, a learned
    (rank-one dominated) change to 1e-10 and a pure random bulk, whose top singular values crowd together,
    to 1e-3 (50 power iterations, the method used before, were off by more there: checked below)."""
    X = jax.random.normal(jax.random.key(0), (3, 20, 20))
    np.testing.assert_allclose(
        operator_norm(X, iterations=20), np.linalg.norm(np.asarray(X), 2, axis=(1, 2)), rtol=1e-10
    )
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    N = 128
    bulk = 0.2 * jax.random.normal(k1, (4, N, N)) / np.sqrt(N)
    u, v = jax.random.normal(k2, (4, N, 1)), jax.random.normal(k3, (4, 1, N))
    learned = bulk + 0.5 * u @ v / N
    for X, rtol in ((learned, 1e-10), (bulk, 1e-3)):
        ref = np.linalg.norm(np.asarray(X), 2, axis=(1, 2))
        got = np.asarray(operator_norm(X))
        assert np.all(got <= ref * (1 + 1e-12))  # a Ritz value: a lower bound
        np.testing.assert_allclose(got, ref, rtol=rtol)
    # the old 50-step power iteration on the bulk, for the record of why Lanczos
    w = jnp.ones((4, N)) / np.sqrt(N)
    for _ in range(50):
        w = jnp.einsum("mji,mjk,mk->mi", bulk, bulk, w)
        w = w / jnp.linalg.norm(w, axis=-1, keepdims=True)
    power = np.linalg.norm(np.asarray(jnp.einsum("mij,mj->mi", bulk, w)), axis=-1)
    ref = np.linalg.norm(np.asarray(bulk), 2, axis=(1, 2))
    assert np.max(np.abs(power / ref - 1)) > np.max(np.abs(np.asarray(operator_norm(bulk)) / ref - 1))


def test_outlier_picks_rightmost_and_upper_member_of_pair():
    ev = np.array([[0.1 + 0j, 0.9 - 1j, 0.9 + 1j, -0.5]])
    assert outlier_eigenvalue(ev, "oscillator")[0] == 0.9 + 1j
    assert outlier_eigenvalue(np.array([[0.2, 0.95, -0.3]], complex), "integrator")[0] == 0.95


def test_charge_is_invariant_direction_of_the_loss():
    """grad_W W^T - W^T grad_W + grad_u u^T - v grad_v^T = 0: the identity behind the conservation law."""
    net = jaxrnn.init_network(8, 0.6, jax.random.key(1))
    _, g, _ = jaxrnn.population_loss_and_grad(net, jaxrnn.damped_oscillator(0.3, 0.7))
    M = g.W @ net.W.T - net.W.T @ g.W + jnp.outer(g.u, net.u) - jnp.outer(net.v, g.v)
    assert float(jnp.max(jnp.abs(M))) < 1e-13
    C = charge(net.W, net.u, net.v, net.rates)
    np.testing.assert_allclose(C, C.T, atol=1e-14)  # N(N+1)/2 charges: C is symmetric


def test_eigenvalue_learning_time_absolute_at_zero_target():
    t = np.array([0.0, 1.0])
    assert np.isfinite(eigenvalue_learning_time(t, np.array([0.5, 0.0]), 0.0))
