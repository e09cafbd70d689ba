"""Exact losses against quadrature, Monte Carlo and finite differences; adjoint against autodiff."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn.loss import population_loss_and_grad

from helpers import quadrature_loss

TARGETS = {
    "integrator": jaxrnn.leaky_integrator(0.3),
    "oscillator": jaxrnn.damped_oscillator(0.3, 1.0),
    "sum": jaxrnn.exponential_sum([1.0, -0.5 + 0.3j], [0.5, 0.4 - 1.2j]),
}


def _net(N=10, sigma=0.5, seed=0, scaling="mean_field"):
    return jaxrnn.init_network(N, sigma, jax.random.key(seed), scaling=scaling)


@pytest.mark.parametrize("name", TARGETS)
@pytest.mark.parametrize("scaling", ["mean_field", "standard"])
def test_exact_loss_matches_quadrature(name, scaling):
    net, target = _net(scaling=scaling), TARGETS[name]
    ref = quadrature_loss(net, target)
    assert abs(float(jaxrnn.population_loss(net, target)) - ref) <= 1e-10 * ref


@pytest.mark.parametrize("name", TARGETS)
def test_adjoint_gradient_matches_autodiff(name):
    net, target = _net(seed=1), TARGETS[name]
    loss, grad, tail = population_loss_and_grad(net, target)
    auto = jax.grad(jaxrnn.population_loss)(net, target)
    assert abs(float(loss - jaxrnn.population_loss(net, target))) < 1e-14
    for a, b in zip(jax.tree.leaves(grad), jax.tree.leaves(auto)):
        assert np.max(np.abs(a - b)) <= 1e-10 * np.max(np.abs(b))


def _central_fd_check(f, net, n_dirs=6, h=1e-5, seed=0):
    """Directional derivatives of f along random directions: autodiff/adjoint vs central differences."""
    f = jax.jit(f)
    grad = jax.grad(f)(net)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(n_dirs):
        d = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape)), net)
        plus = jax.tree.map(lambda x, y: x + h * y, net, d)
        minus = jax.tree.map(lambda x, y: x - h * y, net, d)
        fd = (f(plus) - f(minus)) / (2 * h)
        an = sum(jnp.vdot(g, y) for g, y in zip(jax.tree.leaves(grad), jax.tree.leaves(d)))
        worst = max(worst, abs(float(fd - an)) / abs(float(an)))
    return worst


@pytest.mark.parametrize("name", TARGETS)
def test_adjoint_gradient_matches_finite_differences(name):
    net, target = _net(seed=2), TARGETS[name]
    f = lambda m: population_loss_and_grad(m, target)[0]
    grad = population_loss_and_grad(net, target)[1]
    rng = np.random.default_rng(0)
    for field in ("W", "u", "v"):  # each parameter block separately
        d = jnp.asarray(rng.normal(size=getattr(net, field).shape))
        shift = lambda e, d=d, field=field: jax.tree.map(lambda x: x, net).__class__(
            **{k: getattr(net, k) + (e * d if k == field else 0) for k in ("W", "u", "v")},
            scaling=net.scaling,
        )
        h = 1e-5
        fd = (f(shift(h)) - f(shift(-h))) / (2 * h)
        an = jnp.vdot(getattr(grad, field), d)
        assert abs(float(fd - an)) <= 1e-6 * abs(float(an)), field


@pytest.mark.parametrize("name", ["integrator", "oscillator"])
def test_finite_horizon_and_discrete_gradients_match_finite_differences(name):
    net, target = _net(N=6, seed=3), TARGETS[name]
    assert _central_fd_check(lambda m: jaxrnn.finite_horizon_loss(m, target, 20.0), net) <= 1e-6
    assert _central_fd_check(lambda m: jaxrnn.discrete_loss(m, target, 0.1), net) <= 1e-6


@pytest.mark.parametrize("name", TARGETS)
@pytest.mark.parametrize("horizon", [3.0, 50.0])
def test_finite_horizon_loss_matches_quadrature(name, horizon):
    net, target = _net(seed=4), TARGETS[name]
    ref = quadrature_loss(net, target, horizon=horizon)
    assert abs(float(jaxrnn.finite_horizon_loss(net, target, horizon)) - ref) <= 1e-10 * ref


def test_finite_horizon_perfect_integrator_matches_quadrature():
    net, target = _net(seed=5), jaxrnn.perfect_integrator()
    ref = quadrature_loss(net, target, horizon=50.0)
    assert abs(float(jaxrnn.finite_horizon_loss(net, target, 50.0)) - ref) <= 1e-10 * ref


def test_finite_horizon_tends_to_stationary_like_one_over_T():
    net, target = _net(seed=6), TARGETS["integrator"]
    L = float(jaxrnn.population_loss(net, target))
    gaps = [L - float(jaxrnn.finite_horizon_loss(net, target, T)) for T in (200.0, 400.0, 800.0)]
    # L_T = L - (1/2T) int tau (k - k*)^2 + exponentially small: the gap halves as T doubles
    assert gaps[0] > 0 and abs(gaps[0] / gaps[1] - 2) < 1e-6 and abs(gaps[1] / gaps[2] - 2) < 1e-6


@pytest.mark.parametrize("name", TARGETS)
def test_discrete_loss_matches_direct_sum_and_converges_at_order_dt(name):
    net, target = _net(N=8, seed=7), TARGETS[name]
    dt = 0.05
    F = np.eye(8) + dt * (np.asarray(net.W) - np.eye(8))
    k, x = [], np.asarray(net.u)
    for _ in range(4000):
        k.append(net.readout_scale * np.asarray(net.v) @ x)
        x = F @ x
    direct = 0.5 * dt * np.sum((np.array(k) - np.asarray(target(np.arange(4000) * dt))) ** 2)
    assert abs(float(jaxrnn.discrete_loss(net, target, dt)) - direct) <= 1e-10 * direct
    L = float(jaxrnn.population_loss(net, target))
    e1 = abs(float(jaxrnn.discrete_loss(net, target, 0.02)) - L)
    e2 = abs(float(jaxrnn.discrete_loss(net, target, 0.01)) - L)
    assert 1.8 < e1 / e2 < 2.2  # first order in dt


@pytest.mark.parametrize("name", ["integrator", "oscillator"])
@pytest.mark.parametrize("sigma", [0.3, 0.8])
def test_exact_loss_matches_monte_carlo(name, sigma):
    """Sampled loss (B paths) against its exact expectation L_dt, within 3 standard errors, 5 networks."""
    target = {"integrator": jaxrnn.leaky_integrator(0.3), "oscillator": jaxrnn.damped_oscillator(0.3, 1.0)}[
        name
    ]
    dt, batch = 0.05, 256
    nets = [jaxrnn.init_network(16, sigma, jax.random.key(100 + seed)) for seed in range(5)]
    kappa = min(-np.max(np.linalg.eigvals(np.asarray(n.W) - np.eye(16)).real) for n in nets)
    assert kappa > 0.02, "test networks must be stable"
    burn_in = int(np.ceil(15 / (min(kappa, 0.3) * dt)))  # transient below e^-30
    sample = jax.jit(
        lambda n, k: jaxrnn.sampled_loss(
            n, target, k, dt=dt, batch=batch, steps=3000, burn_in=burn_in, per_path=True
        )
    )
    z_scores = []
    for seed, net in enumerate(nets):
        paths = sample(net, jax.random.key(seed))
        mc, se = float(np.mean(paths)), float(np.std(paths, ddof=1) / np.sqrt(batch))
        exact = float(jaxrnn.discrete_loss(net, target, dt))
        z_scores.append((mc - exact) / se)
        # and the stationary (dt -> 0) loss is within O(dt) of it
        assert abs(exact - float(jaxrnn.population_loss(net, target))) < 2 * dt * exact
    print(f"MC z-scores ({name}, sigma={sigma}):", np.round(z_scores, 2))
    assert np.all(np.abs(z_scores) < 3), z_scores


def test_sampled_loss_gradient_is_unbiased_direction():
    """The BPTT gradient of the sampled loss, averaged over many paths, approximates the exact L_dt gradient."""
    net, target = _net(N=6, sigma=0.3, seed=8), TARGETS["integrator"]
    g_mc = jax.grad(
        lambda m: jaxrnn.sampled_loss(
            m, target, jax.random.key(0), dt=0.1, batch=2048, steps=300, burn_in=200
        )
    )(net)
    g_ex = jax.grad(lambda m: jaxrnn.discrete_loss(m, target, 0.1))(net)
    a = np.concatenate([np.ravel(x) for x in jax.tree.leaves(g_mc)])
    b = np.concatenate([np.ravel(x) for x in jax.tree.leaves(g_ex)])
    assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.95


def test_population_loss_vmaps_over_networks_and_targets():
    pop = jaxrnn.init_population(8, 0.4, 0, 5)
    targets = jaxrnn.leaky_integrator(jnp.linspace(0.1, 0.5, 5))
    batched = jax.vmap(jaxrnn.population_loss)(pop, targets)
    loss = jax.jit(jaxrnn.population_loss)
    single = [
        float(loss(jax.tree.map(lambda x, i=i: x[i], pop), jaxrnn.leaky_integrator(c)))
        for i, c in enumerate(np.linspace(0.1, 0.5, 5))
    ]
    np.testing.assert_allclose(batched, single, rtol=1e-12)


def test_float32_loss_is_close_to_float64():
    net = _net(seed=9)
    net32 = jax.tree.map(lambda x: x.astype(jnp.float32), net)
    target32 = jaxrnn.leaky_integrator(0.1, dtype=jnp.float32)
    L32 = jaxrnn.population_loss(net32, target32)
    assert L32.dtype == jnp.float32
    assert abs(float(L32) - float(jaxrnn.population_loss(net, jaxrnn.leaky_integrator(0.1)))) < 1e-4


@pytest.mark.parametrize("sigma", [0.0, 0.3])
def test_low_rank_loss_and_grad_equal_dense(sigma):
    """ADI Gramian factors give the dense (Smith-doubling) loss and adjoint gradients to 1e-10."""
    target = jaxrnn.leaky_integrator(0.1)
    for seed in range(2):
        net = jaxrnn.init_network(40, sigma, jax.random.key(seed))
        # move the outlier out towards 1 - c (0.64-0.93 here), where the ADI converges slowest
        net = jaxrnn.LinearRNN(net.W + 0.7 * jnp.outer(net.u, net.v) / (net.u @ net.v), net.u, net.v)
        assert 0.6 < float(jnp.max(jnp.linalg.eigvals(net.W).real)) < 0.95
        dense = population_loss_and_grad(net, target, doublings=24)
        low = population_loss_and_grad(net, target, gramian="low_rank")
        assert float(low[2]) <= 1.5e-9
        assert abs(float(low[0] - dense[0])) <= 1e-10 * abs(float(dense[0]))
        for a, b in zip(jax.tree.leaves(low[1]), jax.tree.leaves(dense[1])):
            assert float(jnp.max(jnp.abs(a - b))) <= 1e-10 * float(jnp.max(jnp.abs(b)))
        lv = jaxrnn.population_loss(net, target, gramian="low_rank")
        assert abs(float(lv - dense[0])) <= 1e-10 * abs(float(dense[0]))


def test_low_rank_refuses_complex_poles_and_unknown_gramians():
    net = _net()
    with pytest.raises(ValueError, match="kind='integrator'"):
        population_loss_and_grad(net, TARGETS["oscillator"], gramian="low_rank")
    with pytest.raises(ValueError, match="gramian must be one of"):
        population_loss_and_grad(net, TARGETS["integrator"], gramian="lowrank")
