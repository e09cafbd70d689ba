"""Fast exact and sampled steps equal today's reference paths (float64 unless said otherwise)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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
FAST = jax.jit(
    lambda m, t, p: population_loss_and_grad_fast(m, t, max_doublings=24, shift=p, return_doublings=True)
)
LOSS_FAST = jax.jit(lambda m, t: population_loss_fast(m, t, max_doublings=24))
FAST_NEUMANN = jax.jit(lambda m, t: population_loss_and_grad_fast(m, t, max_doublings=24, inverse="neumann"))


@pytest.mark.parametrize("name", ["integrator", "sum"])  # real poles; complex poles (sum of two)
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


@pytest.mark.parametrize("name", ["integrator", "oscillator"])
def test_fast_exact_with_the_neumann_inverse_equals_reference(name):
    """The matmul-only Cayley inverse (the Neumann product started on the automatic shift's dominant subspace,
    as `train` runs it one network at a time): the reference's loss and gradient to 1e-10, learned outliers
    included."""
    target = TARGETS[name]
    for sigma, outlier in CASES:
        net = _net(sigma=sigma, outlier=outlier, seed=1)
        ref = REF(net, target)
        loss, grad, tail = FAST_NEUMANN(net, target)
        assert float(tail) <= np.sqrt(np.finfo(np.float64).eps)
        assert abs(float(loss - ref[0])) <= 1e-10 * abs(float(ref[0]))
        assert tree_max_rel_err(grad, ref[1]) <= 1e-10


def test_fast_exact_gradient_matches_finite_differences():
    net, target = _net(sigma=0.5, seed=2, outlier=0.7), TARGETS["sum"]
    grad = FAST(net, target, None)[1]
    rng = np.random.default_rng(0)
    for field in ("W", "u", "v"):
        d = jnp.asarray(rng.normal(size=getattr(net, field).shape))
        moved = lambda e, d=d, field=field: jaxrnn.LinearRNN(
            **{k: getattr(net, k) + (e * d if k == field else 0) for k in ("W", "u", "v")}
        )
        h = 1e-5
        fd = (LOSS_FAST(moved(h), target) - LOSS_FAST(moved(-h), target)) / (2 * h)
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
    _, _, tail, K = jax.jit(
        lambda A: gramians_adaptive(A, net.u, net.v, max_doublings=12, observability=False)
    )(A)
    assert int(K) == 12 and not float(tail) < 1e-3


def test_auto_shift_saves_doublings_in_the_learned_regime():
    """Outlier of W at 0.95 (decay 0.05), bulk radius 0.1: the shift moves below 1 and no more doublings
    than with p = 1 are needed."""
    net = _net(sigma=0.1, seed=4, outlier=0.95)
    p = float(cayley_shift(net.W))
    assert 0.05 <= p < 0.6
    target = TARGETS["integrator"]
    K_auto, K_one = int(FAST(net, target, p)[3]), int(FAST(net, target, 1.0)[3])
    assert K_auto < K_one, (K_auto, K_one)


def test_cayley_shift_minimises_the_spectral_model_in_complex_arithmetic():
    """`cayley_shift` (real arithmetic) picks the grid shift minimising the worst damping
    |p - 1 + z| / |p + 1 - z| over its model points z, recomputed here with numpy complex numbers from the
    same Ritz pair: real outliers, complex pairs and bulk-only networks."""
    rng = np.random.default_rng(3)
    N = 24
    for sigma, pair in [(0.3, None), (0.5, (0.9, 0.0)), (0.2, (0.85, 0.3)), (0.9, None), (0.1, (0.6, 0.5))]:
        W = rng.standard_normal((N, N)) * sigma / np.sqrt(N)
        if pair is not None:
            q = np.linalg.qr(rng.standard_normal((N, 2)))[0]
            a, b = pair
            W = W + q @ np.array([[a, b], [-b, a]]) @ q.T
        i = np.arange(N)
        Q = np.stack([np.ones(N), np.cos(2.399963 * i)], -1) / np.sqrt(N)
        for _ in range(6):  # orthonormalising every step spans the same subspace as every second step
            Q = np.linalg.qr(W @ Q)[0]
        ritz = np.linalg.eigvals(Q.T @ W @ Q)
        theta = ritz[np.lexsort((ritz.imag, ritz.real))[-1]]  # larger real part, else Im >= 0
        r_b = np.sqrt(max(np.sum(W * W) - 2 * abs(theta) ** 2, 0) / N)
        grid = 0.05 * (2.0 / 0.05) ** np.linspace(0, 1, 24)
        pts = np.array([theta, r_b, 1j * r_b, -r_b])
        worst = np.max(np.abs(grid[:, None] - 1 + pts) / np.abs(grid[:, None] + 1 - pts), axis=1)
        assert float(cayley_shift(jnp.asarray(W))) == pytest.approx(grid[np.argmin(worst)], rel=1e-12)


def test_fast_exact_vmaps_and_float32():
    """vmapped over networks and targets (the while loop runs to the slowest network) = one at a time;
    float32 within float32 resolution of the O(1/c) terms."""
    pop = jaxrnn.init_population(12, 0.4, 0, 3)
    cs = np.linspace(0.1, 0.5, 3)
    fast = jax.jit(jax.vmap(lambda m, t: population_loss_and_grad_fast(m, t)[:2]))(
        pop, jaxrnn.leaky_integrator(cs)
    )
    for i, c in enumerate(cs):
        ref = REF(jax.tree.map(lambda x, i=i: x[i], pop), jaxrnn.leaky_integrator(c))[:2]
        assert tree_max_rel_err(jax.tree.map(lambda x, i=i: x[i], fast), ref) <= 1e-10
    net32 = jax.tree.map(lambda x: x[0].astype(jnp.float32), pop)
    f32 = FAST(net32, jaxrnn.leaky_integrator(0.1, dtype=jnp.float32), None)
    assert f32[0].dtype == jnp.float32
    assert (
        tree_max_rel_err(f32[:2], REF(jax.tree.map(lambda x: x[0], pop), jaxrnn.leaky_integrator(0.1))[:2])
        <= 2e-4
    )


def test_impulse_response_euler_equals_matrix_powers():
    net = _net(N=8, seed=5)
    F = np.eye(8) + 0.1 * (np.asarray(net.W) - np.eye(8))
    for n in (1, 2, 37, 256):
        ref = [
            net.readout_scale * np.asarray(net.v) @ np.linalg.matrix_power(F, m) @ np.asarray(net.u)
            for m in range(n)
        ]
        np.testing.assert_allclose(impulse_response_euler(net, 0.1, n), ref, rtol=1e-12, atol=1e-14)


SAMPLED_FFT = jax.jit(
    jax.value_and_grad(sampled_loss_fft), static_argnames=("dt", "batch", "steps", "burn_in")
)
SAMPLED_KW = dict(dt=0.1, batch=5, steps=61)


@pytest.mark.parametrize("name,burn_in", [("integrator", 0), ("sum", 7)])
def test_fft_sampled_loss_and_gradient_equal_bptt(name, burn_in):
    """Same noise, same value and gradient as `sampled_loss` (BPTT through lax.scan), to 1e-10."""
    net, target = _net(N=12, sigma=0.6, seed=6), TARGETS[name]
    kw = dict(SAMPLED_KW, burn_in=burn_in)
    key = jax.random.key(7)
    ref_v, ref_g = jax.jit(jax.value_and_grad(lambda m: sampled_loss(m, target, key, **kw)))(net)
    v, g = SAMPLED_FFT(net, target, key, **kw)
    assert abs(float(v - ref_v)) <= 1e-10 * abs(float(ref_v))
    assert tree_max_rel_err(g, ref_g) <= 1e-10
    np.testing.assert_allclose(
        sampled_loss_fft(net, target, key, per_path=True, **kw),
        sampled_loss(net, target, key, per_path=True, **kw),
        rtol=1e-10,
    )


def test_fft_sampled_loss_float32():
    """float32 (the benchmark's dtype): equal to the BPTT loss and gradient to float32 tolerance."""
    net = jax.tree.map(lambda x: x.astype(jnp.float32), _net(sigma=0.3, seed=1))
    target = jaxrnn.leaky_integrator(0.1, dtype=jnp.float32)
    key = jax.random.key(0)
    ref = jax.jit(jax.value_and_grad(lambda m: sampled_loss(m, target, key, **SAMPLED_KW)))(net)
    fast = SAMPLED_FFT(net, target, key, burn_in=0, **SAMPLED_KW)
    assert fast[0].dtype == jnp.float32
    assert tree_max_rel_err(fast, ref) <= 1e-4


def test_fft_sampled_gradient_matches_finite_differences():
    net, target = _net(sigma=0.4, seed=8), TARGETS["sum"]
    key = jax.random.key(1)
    f = lambda m: SAMPLED_FFT(m, target, key, burn_in=7, **SAMPLED_KW)
    grad = f(net)[1]
    rng = np.random.default_rng(1)
    d = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape)), net)
    h = 1e-5
    fd = (
        f(jax.tree.map(lambda x, y: x + h * y, net, d))[0]
        - f(jax.tree.map(lambda x, y: x - h * y, net, d))[0]
    ) / (2 * h)
    an = sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(grad), jax.tree.leaves(d)))
    assert abs(float(fd - an)) <= 1e-6 * abs(float(an))


def test_fast_exact_jvp_of_gradient_equals_reference():
    """Forward-mode through the while loops (Hessian-vector products, as the trainer's curvature estimate
    takes them): equal to the reference's to 1e-10."""
    net, target = _net(sigma=0.5, seed=3, outlier=0.8), TARGETS["sum"]
    d = jax.tree.map(lambda x: jnp.asarray(np.random.default_rng(2).normal(size=x.shape)), net)
    hvp = lambda f: jax.jit(lambda m, d: jax.jvp(lambda m: f(m)[1], (m,), (d,))[1])(net, d)
    fast = hvp(lambda m: population_loss_and_grad_fast(m, target))
    ref = hvp(lambda m: population_loss_and_grad(m, target, doublings=24))
    assert tree_max_rel_err(fast, ref) <= 1e-10
