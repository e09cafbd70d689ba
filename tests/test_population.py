"""The population layout (`_population`) and the matmul-only Cayley inverse it enables.

- `cayley_resolvent(..., "neumann")` inverts pI - A to its stated residual bound, and falls back to the LU
  (bit for bit) where the Neumann product cannot converge in its squarings;
- `train` gives the same results one network at a time as vmapped, with either inverse (float64).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import _population
from jaxrnn.lyapunov import (
    _cayley_resolvent_counted,
    _subspace_start_pays,
    cayley_resolvent,
    cayley_shift_and_subspace,
)

jax.config.update("jax_enable_x64", True)


def _bulk(n, sigma, seed=0):
    return np.random.default_rng(seed).standard_normal((n, n)) * sigma / np.sqrt(n)


def _resolvent(W, p, inverse):
    A = jnp.asarray(W - np.eye(len(W), dtype=W.dtype))
    return np.asarray(jax.jit(lambda A: cayley_resolvent(A, p, inverse))(A))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_neumann_inverse_small_bulk(dtype):
    """A small bulk (sigma = 0.1, p = 1): the Neumann product converges; its residual |I - (pI - A) R|_F is
    within the stopping bound sqrt(n) eps (plus rounding), and R agrees with the LU inverse."""
    n, p = 64, 1.0
    W = _bulk(n, 0.1).astype(dtype)
    R = _resolvent(W, p, "neumann")
    R_lu = _resolvent(W, p, "lu")
    assert R.dtype == dtype
    M = (p + 1) * np.eye(n) - W.astype(np.float64)
    eps = np.finfo(dtype).eps
    residual = np.linalg.norm(np.eye(n) - M @ R.astype(np.float64))
    assert residual <= 4 * np.sqrt(n) * eps, residual
    assert not np.array_equal(R, R_lu)  # the Neumann branch ran, not the fallback
    np.testing.assert_allclose(R, R_lu, rtol=0, atol=20 * eps * np.abs(R_lu).max())


@pytest.mark.parametrize(
    "case",
    [
        "outlier",  # an eigenvalue 0.95 of W with p = 0.2: B's radius 0.79, too slow for three squarings
        "outside",  # an eigenvalue -2 of W (A Hurwitz) with p = 0.5: B's radius 1.33, the series diverges
    ],
)
def test_neumann_inverse_falls_back_to_lu(case):
    n = 32
    W = _bulk(n, 0.1, seed=1)
    q = np.random.default_rng(2).standard_normal(n)
    q /= np.linalg.norm(q)
    lam, p = (0.95, 0.2) if case == "outlier" else (-2.0, 0.5)
    W = W - np.outer(W @ q, q) + lam * np.outer(q, q)
    R = _resolvent(W, p, "neumann")
    np.testing.assert_array_equal(R, _resolvent(W, p, "lu"))
    M = (p + 1) * np.eye(n) - W
    assert np.linalg.norm(np.eye(n) - M @ R) < 1e-12


def _with_outliers(n, eigenvalues, seed=1):
    """A sigma = 0.1 bulk deflated along a random orthonormal pair q1, q2 and given the block `eigenvalues`
    there (a 2 x 2 real matrix: a real outlier and a bulk value, or a complex pair)."""
    W = _bulk(n, 0.1, seed=seed)
    q = np.linalg.qr(np.random.default_rng(seed + 1).standard_normal((n, 2)))[0]
    P = q @ q.T
    return W - P @ W @ P + q @ np.asarray(eigenvalues) @ q.T


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block", ["real", "pair"])
def test_neumann_inverse_started_on_the_dominant_subspace(dtype, block):
    """A learned outlier near 1 with a small shift (W's eigenvalue 0.95, or the pair 0.9 +- 0.3i, p = 0.2):
    the plain Neumann product falls back to the LU, the one started on `cayley_shift_and_subspace`'s subspace
    converges within its squarings, to the residual bound sqrt(n) eps (plus rounding), and agrees with the LU."""
    n, p = 64, 0.2
    eigenvalues = [[0.95, 0.0], [0.0, 0.05]] if block == "real" else [[0.9, 0.3], [-0.3, 0.9]]
    W = _with_outliers(n, eigenvalues).astype(dtype)
    A = jnp.asarray(W - np.eye(n, dtype=dtype))
    subspace = jax.jit(lambda W: cayley_shift_and_subspace(W)[1])(jnp.asarray(W))
    run = jax.jit(lambda A, sub: _cayley_resolvent_counted(A, p, "neumann", sub))
    _, _, plain_lu = run(A, None)
    R, squarings, used_lu = run(A, subspace)
    assert bool(plain_lu) and not bool(used_lu) and int(squarings) <= 3
    R = np.asarray(R)
    M = (p + 1) * np.eye(n) - W.astype(np.float64)
    eps = np.finfo(dtype).eps
    assert np.linalg.norm(np.eye(n) - M @ R.astype(np.float64)) <= 4 * np.sqrt(n) * eps
    R_lu = _resolvent(W, p, "lu")
    np.testing.assert_allclose(R, R_lu, rtol=0, atol=50 * eps * np.abs(R_lu).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_subspace_start_is_taken_only_where_it_saves_squarings(dtype):
    """`_subspace_start_pays`: no at the start of learning (an iid bulk, sigma = 0.1, p = 1, whose top Ritz
    value is the bulk's edge), so the product there is the plain one bit for bit, with the same squarings;
    yes for a learned outlier or pair clear of the bulk (0.95, 0.9 +- 0.3i with p = 0.2)."""
    n = 128

    def pays_and_runs(W, p):
        A = jnp.asarray(W - np.eye(n, dtype=dtype))
        sub = jax.jit(lambda W: cayley_shift_and_subspace(W)[1])(jnp.asarray(W))
        B = np.asarray(W, np.float64) / (1 + p)
        log_tol = 0.5 * np.log(n * np.finfo(dtype).eps ** 2)
        pays = _subspace_start_pays(sub[1] / (1 + p), jnp.log(jnp.asarray(np.sum(B * B), dtype)), log_tol, n)
        run = jax.jit(lambda A, sub: _cayley_resolvent_counted(A, p, "neumann", sub))
        return bool(pays), run(A, sub), run(A, None)

    pays, (R, k, lu), (R_plain, k_plain, lu_plain) = pays_and_runs(_bulk(n, 0.1).astype(dtype), 1.0)
    assert not pays and not bool(lu) and int(k) == int(k_plain) >= 1
    np.testing.assert_array_equal(np.asarray(R), np.asarray(R_plain))
    for eigenvalues in ([[0.95, 0.0], [0.0, 0.05]], [[0.9, 0.3], [-0.3, 0.9]]):
        pays, (R, k, lu), (_, _, lu_plain) = pays_and_runs(_with_outliers(n, eigenvalues).astype(dtype), 0.2)
        assert pays and not bool(lu) and bool(lu_plain)


def test_neumann_start_on_any_subspace_is_exact_or_falls_back():
    """The start X_0 = I + Q S Q^T is exact algebra for any orthonormal Q (its residual is computed, not
    assumed): a random, non-invariant Q still gives R to the bound (or the LU); a singular I - H/(p + 1)
    (H = (p + 1) I) gives non-finite S and the LU, bit for bit."""
    n, p = 32, 0.5
    W = _bulk(n, 0.3, seed=4)
    A = jnp.asarray(W - np.eye(n))
    Q = np.linalg.qr(np.random.default_rng(5).standard_normal((n, 2)))[0]
    run = jax.jit(lambda A, Q, H: _cayley_resolvent_counted(A, p, "neumann", (Q, H)))
    R, _, _ = run(A, jnp.asarray(Q), jnp.asarray(Q.T @ W @ Q))
    M = (p + 1) * np.eye(n) - W
    assert np.linalg.norm(np.eye(n) - M @ np.asarray(R)) <= 4 * np.sqrt(n) * np.finfo(np.float64).eps
    R, _, used_lu = run(A, jnp.asarray(Q), jnp.asarray((p + 1) * np.eye(2)))
    assert bool(used_lu)
    np.testing.assert_array_equal(np.asarray(R), _resolvent(W, p, "lu"))


def test_neumann_inverse_rejects_unknown_method():
    with pytest.raises(ValueError, match="inverse must be one of"):
        cayley_resolvent(jnp.zeros((3, 3)) - jnp.eye(3), 1.0, "qr")
    with pytest.raises(ValueError, match="ExactLoss.inverse"):
        jaxrnn.ExactLoss(inverse="qr")


def _population_run(method, loss, per_network_from, monkeypatch):
    """`train` with the layout forced: one network at a time from N = per_network_from on."""
    monkeypatch.setattr(_population, "PER_NETWORK_MIN_N", per_network_from)
    jax.clear_caches()  # the layout is chosen when a program is traced
    N, M = 8, 3
    rng = np.random.default_rng(3)
    W = rng.standard_normal((M, N, N)) * np.array([0.1, 0.3, 0.6])[:, None, None] / np.sqrt(N)
    model = jaxrnn.LinearRNN(jnp.asarray(W), jnp.asarray(rng.standard_normal((M, N))),
                             jnp.asarray(rng.standard_normal((M, N))))  # fmt: skip
    target = jaxrnn.leaky_integrator(0.3)
    eta = 1.0 if isinstance(method, jaxrnn.GradientFlow) else 0.05  # a stable descent (u, v move at eta N)
    res = jaxrnn.train(model, target, eta=eta, method=method, loss=loss, steps=40, n_log=5)
    jax.clear_caches()
    return res


@pytest.mark.parametrize(
    "method", [jaxrnn.GradientFlow(dt=0.02, checks=2), jaxrnn.GradientDescent()], ids=["rk4", "gd"]
)
def test_layouts_agree(method, monkeypatch):
    """One network at a time (lax.map) and vmapped give the same losses, parameters and curvature checks
    (float64, 1e-12 relative), with the LU inverse in both and with the Neumann inverse one at a time."""
    loss = jaxrnn.ExactLoss()
    batched = _population_run(method, loss, 10**9, monkeypatch)
    mapped = _population_run(method, loss, 1, monkeypatch)  # ExactLoss resolves to the Neumann inverse
    mapped_lu = _population_run(method, jaxrnn.ExactLoss(inverse="lu"), 1, monkeypatch)
    assert np.all(batched.status == 0)  # every network trained: the comparison covers whole runs
    for res in (mapped, mapped_lu):
        np.testing.assert_array_equal(res.status, batched.status)
        np.testing.assert_allclose(res.loss, batched.loss, rtol=1e-12)
        for name in ("W", "u", "v"):
            a, b = getattr(res.final, name), getattr(batched.final, name)
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * np.abs(b).max())
    if isinstance(method, jaxrnn.GradientFlow):
        # the Lanczos check's Hessian-vector products are differences of gradients at a step e ~ 1e-8: the
        # gradients' last-bit differences come out ~1e-8 relative
        np.testing.assert_allclose(mapped.curvature, batched.curvature, rtol=1e-6)


def test_train_resolves_the_inverse_by_layout():
    target = jaxrnn.leaky_integrator(0.1)
    assert jaxrnn.ExactLoss().resolved(target, one_at_a_time=True).inverse == "neumann"
    assert jaxrnn.ExactLoss().resolved(target).inverse == "lu"
    assert jaxrnn.ExactLoss(inverse="lu").resolved(target, one_at_a_time=True).inverse == "lu"
    assert _population.per_network(64, "cpu") and not _population.per_network(32, "cpu")
    assert not _population.per_network(128, "gpu")
