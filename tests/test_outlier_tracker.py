"""Device-side outlier tracker against numpy eig; the separation flag on the sigma = 0.8, c = 0.4 case."""

import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn
from jaxrnn.observables import (
    eigenvalue_learning_time,
    init_outlier_tracker,
    outlier_eigenvalue,
    track_outlier,
)

track = jax.jit(track_outlier, static_argnames=("kind", "iterations"))


def _planted(N, sigma, seed, outlier):
    """W0 ~ N(0, sigma^2/N) with the eigenvalue `outlier` (a real one along q = u/|u|, or a complex pair on
    span(u, v)) planted exactly: W = W0 - W0 Q Q^T + Q R Q^T has W Q = Q R. Returns (W0, W, u, v)."""
    net = jaxrnn.init_network(N, sigma, jax.random.key(seed))
    W0, u, v = net.W, net.u, net.v
    if np.iscomplexobj(outlier):
        Q = jnp.linalg.qr(jnp.stack([u, v], -1))[0]
        R = jnp.array([[outlier.real, outlier.imag], [-outlier.imag, outlier.real]])
    else:
        Q, R = (u / jnp.linalg.norm(u))[:, None], jnp.array([[outlier]])
    return W0, W0 - W0 @ Q @ Q.T + Q @ R @ Q.T, u, v


def test_integrator_outlier_matches_eig_and_is_separated():
    for sigma, lam in ((0.3, 0.7), (0.5, 0.8), (0.1, 0.9)):
        for seed in range(2):
            W0, W, u, v = _planted(48, sigma, seed, lam)
            ref = outlier_eigenvalue(np.linalg.eigvals(np.asarray(W))[None].astype(complex), "integrator")[0]
            assert abs(ref - lam) < 1e-10
            # a cold start from fixed vectors (not u, v): the iteration has to find it
            theta, _, separated, residual = track(W, init_outlier_tracker(W0), "integrator", iterations=60)
            assert abs(complex(theta) - ref) <= 1e-10, (sigma, seed, theta, ref)
            assert bool(separated) and float(residual) < 1e-8


def test_oscillator_pair_matches_eig():
    for sigma, lam in ((0.3, 0.7 + 0.5j), (0.5, 0.6 + 0.9j)):
        for seed in range(2):
            W0, W, u, v = _planted(48, sigma, seed, lam)
            ref = outlier_eigenvalue(np.linalg.eigvals(np.asarray(W))[None], "oscillator")[0]
            assert abs(ref - lam) < 1e-10
            theta, _, separated, residual = track(
                W, init_outlier_tracker(W0, u, v), "oscillator", iterations=60
            )
            assert abs(complex(theta) - ref) <= 1e-10 and complex(theta).imag > 0
            assert bool(separated) and float(residual) < 1e-8


def test_flag_when_the_learned_eigenvalue_is_inside_the_bulk():
    """sigma = 0.8, c = 0.4: the learned 1 - c = 0.6 lies inside the bulk (radius ~0.8). Whatever the
    tracker converges to (the planted 0.6 from a start along u, or the bulk's edge from fixed vectors),
    it is flagged as not separated; with the same W0 and c = 0.1 (0.9 outside the bulk) it is not."""
    for seed in range(3):
        W0, W, u, v = _planted(64, 0.8, seed, 0.6)
        edge = np.max(np.abs(np.linalg.eigvals(np.asarray(W0))))
        assert 0.7 < edge < 1.0  # the bulk edge is where the host "outlier" would be reported
        for state in (init_outlier_tracker(W0, u, v), init_outlier_tracker(W0)):
            theta, _, separated, residual = track(W, state, "integrator", iterations=60)
            assert not bool(separated), (seed, theta, residual)
        W0, W, u, v = _planted(64, 0.8, seed, 1.2)
        theta, _, separated, _ = track(W, init_outlier_tracker(W0, u, v), "integrator", iterations=60)
        assert bool(separated) and abs(complex(theta) - 1.2) < 1e-8


def test_warm_start_tracks_a_moving_outlier_with_few_iterations():
    """Outlier moving 0.3 -> 0.9 over 13 log points (sigma = 0.2): 8 iterations per call from the previous
    state stay within 1e-6 of eig once it is separated, vmapped over 3 networks."""
    nets = [_planted(32, 0.2, s, 0.3) for s in range(3)]
    W0 = jnp.stack([n[0] for n in nets])
    u = jnp.stack([n[2] for n in nets])
    state = jax.vmap(init_outlier_tracker)(W0, u, jnp.stack([n[3] for n in nets]))
    step = jax.jit(jax.vmap(lambda W, s: track_outlier(W, s, "integrator", iterations=8)))
    q = u / jnp.linalg.norm(u, axis=1, keepdims=True)
    deflated = W0 - jnp.einsum("mij,mj,mk->mik", W0, q, q)
    for lam in np.linspace(0.3, 0.9, 13):
        W = deflated + lam * jnp.einsum("mi,mj->mij", q, q)
        theta, state, separated, residual = step(W, state)
        ref = outlier_eigenvalue(np.linalg.eigvals(np.asarray(W)).astype(complex), "integrator")
        if lam >= 0.3:
            np.testing.assert_allclose(np.asarray(theta), ref, atol=1e-6)
            assert np.all(np.asarray(separated))


def test_eigenvalue_learning_time_ignores_unseparated_points():
    """An "outlier" sitting within 1% of lambda* but flagged never counts: NaN instead of a time."""
    t = np.array([0.0, 1.0, 2.0])
    outlier = np.array([[0.6, 0.601, 0.6]])
    assert eigenvalue_learning_time(t, outlier, 0.6)[0] == 0.0
    assert np.isnan(eigenvalue_learning_time(t, outlier, 0.6, valid=np.zeros((1, 3), bool))[0])
    np.testing.assert_allclose(
        eigenvalue_learning_time(t, outlier, 0.6, valid=np.array([[False, True, True]]))[0], 1.0
    )


def test_rightmost_not_largest_modulus():
    """A large negative eigenvalue (-5, allowed: W - I stays Hurwitz) besides the outlier 0.7: the tracker
    reports the rightmost one, as `outlier_eigenvalue` does (powers of W would find -5)."""
    net = jaxrnn.init_network(48, 0.3, jax.random.key(5))
    Q = jnp.linalg.qr(jnp.stack([net.u, net.v], -1))[0]
    W = net.W - net.W @ Q @ Q.T + Q @ jnp.diag(jnp.array([0.7, -5.0])) @ Q.T
    ref = outlier_eigenvalue(np.linalg.eigvals(np.asarray(W))[None].astype(complex), "integrator")[0]
    assert abs(ref - 0.7) < 1e-10
    theta, _, separated, residual = track(W, init_outlier_tracker(net.W), "integrator", iterations=60)
    assert abs(complex(theta) - ref) <= 1e-10 and bool(separated)


def test_separation_flag_is_a_store_variable_beside_the_outlier():
    """`outlier_separated` reaches the store and xarray layout as int8 data beside `outlier` (1 separated,
    0 not: the "outlier" may be the bulk's edge), and -1 where the outlier was not tracked, never a
    default of "separated"."""
    import types

    from jaxrnn.results import network_arrays
    from jaxrnn.variables import NETWORK_VARIABLES

    M, T = 2, 3
    fields = {name: np.zeros((M, T)) for name in ("loss", "dW_op", "charge_drift", "uv")}
    fields |= {name: np.zeros(M) for name in ("t_learn", "t_learn_eigenvalue", "steps_to_learn")}
    base = dict(
        fields,
        outlier=np.full((M, T), 0.5 + 0j),
        status=np.zeros(M, int),
        diverged_step=np.full(M, -1),
        eigenvalues=None,
    )
    sep = np.array([[True, True, False], [False, True, True]])
    tracked = network_arrays(types.SimpleNamespace(**base, outlier_separated=sep))
    assert tracked["outlier_separated"].dtype == np.int8
    np.testing.assert_array_equal(tracked["outlier_separated"], sep.astype(np.int8))
    untracked = network_arrays(types.SimpleNamespace(**base, outlier_separated=None))
    np.testing.assert_array_equal(untracked["outlier_separated"], -np.ones((M, T), np.int8))
    var = NETWORK_VARIABLES["outlier_separated"]
    assert var.dims == ("t",) and var.kind == "int8" and var.attrs["flag_values"] == [-1, 0, 1]
