"""Matmul-only Lyapunov/Stein solvers against scipy, in float64 and float32."""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sl

from jaxrnn.lyapunov import doublings_for, gramians, solve_lyapunov, solve_stein


def _matrix_with_decay(n, kappa, seed):
    """A non-normal A whose slowest decay rate (-max Re eig) is exactly kappa."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n, n)) * 0.8 / np.sqrt(n)
    lam_max = np.max(np.linalg.eigvals(W).real)
    return W - (lam_max + kappa) * np.eye(n)


@pytest.mark.parametrize("kappa", [1.0, 1e-1, 1e-2, 1e-3])
def test_lyapunov_float64_matches_scipy(kappa):
    for seed in range(3):
        A = _matrix_with_decay(24, kappa, seed)
        Q = np.outer(*(2 * [np.random.default_rng(seed + 10).normal(size=24)]))
        ref = sl.solve_continuous_lyapunov(A, -Q)
        X, tail = solve_lyapunov(jnp.asarray(A), jnp.asarray(Q), doublings=doublings_for(kappa))
        assert np.max(np.abs(np.asarray(X) - ref)) / np.max(np.abs(ref)) <= 1e-10
        assert float(tail) < 1e-12


@pytest.mark.parametrize("kappa", [1.0, 1e-1, 1e-2])
def test_lyapunov_float32_matches_scipy(kappa):
    for seed in range(3):
        A = _matrix_with_decay(24, kappa, seed)
        Q = np.outer(*(2 * [np.random.default_rng(seed + 10).normal(size=24)]))
        ref = sl.solve_continuous_lyapunov(A, -Q)
        X, _ = solve_lyapunov(
            jnp.asarray(A, jnp.float32), jnp.asarray(Q, jnp.float32), doublings=doublings_for(kappa)
        )
        assert X.dtype == jnp.float32
        assert np.max(np.abs(np.asarray(X, float) - ref)) / np.max(np.abs(ref)) <= 1e-4


def test_gramians_share_powers_and_satisfy_both_equations():
    A = _matrix_with_decay(16, 0.05, 1)
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=16), rng.normal(size=16)
    P, O, tail = gramians(jnp.asarray(A), jnp.asarray(u), jnp.asarray(v), doublings=doublings_for(0.05))
    P, O = np.asarray(P), np.asarray(O)
    assert np.max(np.abs(A @ P + P @ A.T + np.outer(u, u))) < 1e-10 * np.max(np.abs(P))
    assert np.max(np.abs(A.T @ O + O @ A + np.outer(v, v))) < 1e-10 * np.max(np.abs(O))
    # int k^2 two ways: v^T P v = u^T O u
    assert abs(v @ P @ v - u @ O @ u) < 1e-10 * abs(v @ P @ v)


def test_stein_matches_scipy():
    rng = np.random.default_rng(3)
    F = rng.normal(size=(12, 12))
    F *= 0.97 / np.max(np.abs(np.linalg.eigvals(F)))
    Q = np.eye(12) + 0.1 * np.ones((12, 12))
    ref = sl.solve_discrete_lyapunov(F, Q)
    X, tail = solve_stein(jnp.asarray(F), jnp.asarray(Q), doublings=14)
    assert np.max(np.abs(np.asarray(X) - ref)) / np.max(np.abs(ref)) <= 1e-10


def test_tail_flags_non_hurwitz():
    A = _matrix_with_decay(10, -0.05, 0)  # max Re eig = +0.05: not Hurwitz
    _, tail = solve_lyapunov(jnp.asarray(A), jnp.eye(10))
    assert not float(tail) < 1e-3


def test_doublings_for_rejects_bad_decay():
    with pytest.raises(ValueError, match="min_decay"):
        doublings_for(0.0)


@pytest.mark.parametrize("kappa", [0.3, 0.1, 0.03])
def test_low_rank_adi_gramians_match_scipy(kappa):
    """Z_P Z_P^T and Z_O Z_O^T from ADI with shifts {1, kappa} equal the dense Gramians (non-normal A)."""
    from jaxrnn.lyapunov import low_rank_gramians

    for seed in range(2):
        A = _matrix_with_decay(48, kappa, seed)
        rng = np.random.default_rng(seed + 20)
        u, v = rng.normal(size=48), rng.normal(size=48)
        P = sl.solve_continuous_lyapunov(A, -np.outer(u, u))
        O = sl.solve_continuous_lyapunov(A.T, -np.outer(v, v))
        Zp, Zo, _, tail = low_rank_gramians(
            jnp.asarray(A), jnp.asarray(u), jnp.asarray(v), jnp.asarray([1.0, kappa]), max_steps=400
        )
        Zp, Zo = np.asarray(Zp), np.asarray(Zo)
        assert float(tail) <= 1.5e-9
        assert np.max(np.abs(Zp @ Zp.T - P)) <= 1e-10 * np.max(np.abs(P))
        assert np.max(np.abs(Zo @ Zo.T - O)) <= 1e-10 * np.max(np.abs(O))


def test_low_rank_adi_flags_a_non_hurwitz_matrix():
    from jaxrnn.lyapunov import low_rank_gramians

    A = _matrix_with_decay(24, -0.05, 0)  # rightmost eigenvalue at +0.05
    u = v = jnp.ones(24)
    *_, tail = low_rank_gramians(jnp.asarray(A), u, v, jnp.asarray([1.0, 0.1]), max_steps=64)
    assert float(tail) > 1e-3
