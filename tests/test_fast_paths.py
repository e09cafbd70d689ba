"""Fast exact and sampled steps equal today's reference paths (float64 unless said otherwise)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sl

import jaxrnn
from jaxrnn.loss import (
    impulse_response_euler,
    population_loss_and_grad,
    population_loss_and_grad_fast,
    population_loss_fast,
    sampled_loss,
    sampled_loss_fft,
)
from jaxrnn.lyapunov import cayley_shift, gramians_adaptive

from helpers import tree_max_rel_err

TARGETS = {
    "integrator": jaxrnn.leaky_integrator(0.1),
    "oscillator": jaxrnn.damped_oscillator(0.3, 1.0),
    "sum": jaxrnn.exponential_sum([1.0, -0.5 + 0.3j], [0.5, 0.4 - 1.2j]),
}


def _net(N=12, sigma=0.5, seed=0, outlier=None):
    """A random network; with `outlier`, W0 deflated along u and given the eigenvalue `outlier` there
    (W q = outlier q, q = u/|u|: the learned regime, slowest decay 1 - outlier)."""
    net = jaxrnn.init_network(N, sigma, jax.random.key(seed))
    if outlier is None:
        return net
    q = net.u / jnp.linalg.norm(net.u)
    W = net.W - jnp.outer(net.W @ q, q) + outlier * jnp.outer(q, q)
    return jaxrnn.LinearRNN(W, net.u, net.v)


CASES = [(0.5, None), (0.3, 0.9), (0.8, None), (0.1, 0.95)]


# compiled once per target kind and dtype, shared by the tests below
REF = jax.jit(lambda m, t: population_loss_and_grad(m, t, doublings=24))
FAST = jax.jit(lambda m, t, p: population_loss_and_grad_fast(m, t, max_doublings=24, shift=p, return_doublings=True))
LOSS_FAST = jax.jit(lambda m, t: population_loss_fast(m, t, max_doublings=24))


@pytest.mark.parametrize("name", TARGETS)
def test_fast_exact_loss_and_grad_equal_reference(name):
    """Adaptive doublings + automatic (or fixed) shift: the reference's loss and adjoint gradient to 1e-10,
    for a bulk-only network, learned outliers (slow decay 0.1, 0.05) and a wide bulk."""
    target = TARGETS[name]
    for sigma, outlier in CASES:
        net = _net(sigma=sigma, outlier=outlier, seed=1)
        ref = REF(net, target)
        for p in (cayley_shift(net.W), 1.0):
            loss, grad, tail, K = FAST(net, target, p)
            assert float(tail) <= np.sqrt(np.finfo(np.float64).eps) and int(K) < 24
            assert abs(float(loss - ref[0])) <= 1e-10 * abs(float(ref[0]))
            assert tree_max_rel_err(grad, ref[1]) <= 1e-10
        assert abs(float(LOSS_FAST(net, target) - ref[0])) <= 1e-10 * abs(float(ref[0]))


def test_fast_exact_gradient_matches_finite_differences():
    net, target = _net(N=10, sigma=0.5, seed=2, outlier=0.7), TARGETS["oscillator"]
    f = jax.jit(lambda m: population_loss_fast(m, target))
    grad = jax.jit(lambda m: population_loss_and_grad_fast(m, target)[1])(net)
    rng = np.random.default_rng(0)
    for field in ("W", "u", "v"):
        d = jnp.asarray(rng.normal(size=getattr(net, field).shape))
        shifted = lambda e: jaxrnn.LinearRNN(**{k: getattr(net, k) + (e * d if k == field else 0) for k in ("W", "u", "v")})
        h = 1e-5
        fd = (f(shifted(h)) - f(shifted(-h))) / (2 * h)
        an = jnp.vdot(getattr(grad, field), d)
        assert abs(float(fd - an)) <= 1e-6 * abs(float(an)), field


def test_adaptive_doublings_solve_both_lyapunov_equations_with_few_doublings():
    """P, O satisfy their equations to 1e-10 relative; slower decay needs more doublings, never more than
    the cap, and the stopping rule |F^(2^K)|_F^2 <= eps holds."""
    rng = np.random.default_rng(0)
    used = []
    solve = jax.jit(lambda A, u, v: gramians_adaptive(A, u, v, max_doublings=30))
    for kappa in (1.0, 0.1, 1e-3):
        W = rng.normal(size=(16, 16)) * 0.5 / 4
        A = W - (np.max(np.linalg.eigvals(W).real) + kappa) * np.eye(16)
        u, v = rng.normal(size=16), rng.normal(size=16)
        P, O, tail, K = solve(jnp.asarray(A), jnp.asarray(u), jnp.asarray(v))
        P, O = np.asarray(P), np.asarray(O)
        assert np.max(np.abs(A @ P + P @ A.T + np.outer(u, u))) <= 1e-10 * np.max(np.abs(P))
        assert np.max(np.abs(A.T @ O + O @ A + np.outer(v, v))) <= 1e-10 * np.max(np.abs(O))
        F = np.linalg.solve(np.eye(16) - A, np.eye(16) + A)
        FK = np.linalg.matrix_power(F, 2 ** int(K))
        assert np.sum(FK**2) <= np.finfo(np.float64).eps * (1 + 1e-6)
        assert abs(np.max(np.abs(FK)) - float(tail)) <= 1e-6 * max(float(tail), 1e-300) + 1e-300
        used.append(int(K))
    assert used[0] < used[1] < used[2] < 30, used


def test_fast_exact_flags_non_hurwitz():
    """As the reference's tail (tests/test_lyapunov.py): runs to the cap, and the tail does not vanish."""
    net = _net(N=12, sigma=0.3, seed=3, outlier=1.05)  # rightmost eigenvalue of W - I at +0.05
    A = net.W - jnp.eye(12)
    _, _, tail, K = jax.jit(lambda A: gramians_adaptive(A, net.u, net.v, max_doublings=12, observability=False))(A)
    assert int(K) == 12 and not float(tail) < 1e-3


def test_auto_shift_saves_doublings_in_the_learned_regime():
    """Outlier of W at 0.95 (decay 0.05), bulk radius 0.1: the shift moves below 1 and no more doublings
    than with p = 1 are needed."""
    net = _net(N=32, sigma=0.1, seed=4, outlier=0.95)
    p = float(cayley_shift(net.W))
    assert 0.05 <= p < 0.6
    target = TARGETS["integrator"]
    Kf = jax.jit(lambda m, p: gramians_adaptive(m.W - jnp.eye(32), m.u, m.v, shift=p, observability=False)[3])
    K_auto, K_one = int(Kf(net, p)), int(Kf(net, 1.0))
    assert K_auto < K_one, (K_auto, K_one)


def test_fast_exact_vmaps_and_float32():
    """vmapped over networks and targets (the while loop runs to the slowest network) = one at a time;
    float32 within float32 resolution of the O(1/c) terms."""
    pop = jaxrnn.init_population(12, 0.4, 0, 3)
    cs = np.linspace(0.1, 0.5, 3)
    fast = jax.jit(jax.vmap(lambda m, t: population_loss_and_grad_fast(m, t)[:2]))(pop, jaxrnn.leaky_integrator(cs))
    for i, c in enumerate(cs):
        ref = REF(jax.tree.map(lambda x: x[i], pop), jaxrnn.leaky_integrator(c))[:2]
        assert tree_max_rel_err(jax.tree.map(lambda x: x[i], fast), ref) <= 1e-10
    net32 = jax.tree.map(lambda x: x[0].astype(jnp.float32), pop)
    f32 = FAST(net32, jaxrnn.leaky_integrator(0.1, dtype=jnp.float32), None)
    assert f32[0].dtype == jnp.float32
    assert tree_max_rel_err(f32[:2], REF(jax.tree.map(lambda x: x[0], pop), jaxrnn.leaky_integrator(0.1))[:2]) <= 2e-4


def test_impulse_response_euler_equals_matrix_powers():
    net = _net(N=8, seed=5)
    F = np.eye(8) + 0.1 * (np.asarray(net.W) - np.eye(8))
    for n in (1, 2, 37, 256):
        ref = [net.readout_scale * np.asarray(net.v) @ np.linalg.matrix_power(F, m) @ np.asarray(net.u) for m in range(n)]
        np.testing.assert_allclose(impulse_response_euler(net, 0.1, n), ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name,burn_in", [("integrator", 0), ("sum", 7)])
def test_fft_sampled_loss_and_gradient_equal_bptt(name, burn_in):
    """Same noise, same value and gradient as `sampled_loss` (BPTT through lax.scan), to 1e-10."""
    net, target = _net(N=12, sigma=0.6, seed=6), TARGETS[name]
    kw = dict(dt=0.1, batch=5, steps=61, burn_in=burn_in)
    key = jax.random.key(7)
    ref_v, ref_g = jax.jit(jax.value_and_grad(lambda m: sampled_loss(m, target, key, **kw)))(net)
    v, g = jax.jit(jax.value_and_grad(lambda m: sampled_loss_fft(m, target, key, **kw)))(net)
    assert abs(float(v - ref_v)) <= 1e-10 * abs(float(ref_v))
    assert tree_max_rel_err(g, ref_g) <= 1e-10
    np.testing.assert_allclose(
        sampled_loss_fft(net, target, key, per_path=True, **kw), sampled_loss(net, target, key, per_path=True, **kw), rtol=1e-10
    )


def test_fft_sampled_loss_float32_and_vmap():
    """The benchmark's setting (dt 0.1, T 200, B 16, float32): equal to the BPTT loss to float32 tolerance."""
    pop = jaxrnn.init_population(8, 0.3, 1, 2, dtype=jnp.float32)
    target = jaxrnn.leaky_integrator(0.1, dtype=jnp.float32)
    keys = jax.random.split(jax.random.key(0), 2)
    kw = dict(dt=0.1, batch=16, steps=200)
    ref = jax.jit(jax.vmap(jax.value_and_grad(lambda m, k: sampled_loss(m, target, k, **kw))))(pop, keys)
    fast = jax.jit(jax.vmap(jax.value_and_grad(lambda m, k: sampled_loss_fft(m, target, k, **kw))))(pop, keys)
    assert fast[0].dtype == jnp.float32
    assert tree_max_rel_err(fast, ref) <= 1e-4


def test_fft_sampled_gradient_matches_finite_differences():
    net, target = _net(N=6, sigma=0.4, seed=8), TARGETS["oscillator"]
    key = jax.random.key(1)
    f = jax.jit(lambda m: sampled_loss_fft(m, target, key, dt=0.1, batch=4, steps=40, burn_in=5))
    grad = jax.grad(f)(net)
    rng = np.random.default_rng(1)
    d = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape)), net)
    h = 1e-5
    fd = (f(jax.tree.map(lambda x, y: x + h * y, net, d)) - f(jax.tree.map(lambda x, y: x - h * y, net, d))) / (2 * h)
    an = sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(grad), jax.tree.leaves(d)))
    assert abs(float(fd - an)) <= 1e-6 * abs(float(an))


def test_fast_exact_matches_scipy_gramian():
    """Independent check of the adaptive solver (auto shift) against Bartels-Stewart."""
    net = _net(N=20, sigma=0.5, seed=9, outlier=0.8)
    A = np.asarray(net.W) - np.eye(20)
    P_ref = sl.solve_continuous_lyapunov(A, -np.outer(net.u, net.u))
    P, _, _, _ = gramians_adaptive(jnp.asarray(A), net.u, net.v, shift=cayley_shift(net.W), observability=False)
    assert np.max(np.abs(np.asarray(P) - P_ref)) <= 1e-10 * np.max(np.abs(P_ref))
