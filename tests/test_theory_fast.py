"""The fast sigma = 0 path: closed-form fields and Jacobians, the pivot-free solves, the batched Rodas4
work queue against an independent tight-tolerance scipy solve, eta rescaling, float64 without x64, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from jaxrnn import theory
from jaxrnn.targets import ExponentialSum, damped_oscillator, leaky_integrator
from jaxrnn.theory._field import EIGHT_RATES, FIVE_RATES, eight_field, five_field
from jaxrnn.theory._rosenbrock import ldl_solve_unrolled
from jaxrnn.theory._sigma0 import eight_loss, five_loss

TARGETS = [
    leaky_integrator(0.1),
    damped_oscillator(0.2, 1.3),
    ExponentialSum(
        jnp.array([0.5, 0.3]), jnp.array([0.1, 0.2]), jnp.array([0.2, 0.4]), jnp.array([0.0, 1.0])
    ),
]


def _field_vs_autodiff(field, loss, rates):
    """jitted (closed form f, J) and (autodiff f, J) at one state (one compile per field, not per operation)."""
    R = jnp.asarray(rates)
    n = len(rates)

    def both(x, tg):
        lanes = jax.tree.map(lambda a: a[:, None], tg)
        f, J = field([x[i][None] for i in range(n)], lanes, True)
        f = jnp.stack([jnp.broadcast_to(a, (1,))[0] for a in f])
        J = jnp.stack([jnp.stack([jnp.broadcast_to(a, (1,))[0] for a in row]) for row in J])
        g = lambda x: -R * jax.grad(loss)(x, tg)
        return f, J, g(x), jax.jacfwd(g)(x)

    return jax.jit(both)


FIELDS = {
    5: _field_vs_autodiff(five_field, five_loss, FIVE_RATES),
    8: _field_vs_autodiff(eight_field, eight_loss, EIGHT_RATES),
}


@pytest.mark.parametrize("ti", range(3))
def test_closed_form_field_and_jacobian_match_autodiff(ti):
    """f = -R grad L and f' = -R Hess L in closed form == autodiff of the two-pole loss, to 1e-13 (relative)."""
    t = TARGETS[
        ti
    ]  # kind dropped (static): the field does not use it, so integrator and oscillator share a compile
    tg = ExponentialSum(*(jnp.asarray(a, jnp.float64) for a in (t.r_re, t.r_im, t.s_re, t.s_im)), kind="sum")
    rng = np.random.default_rng(ti)
    for n, fn in FIELDS.items():
        for _ in range(3):
            f, J, f_ref, J_ref = map(np.asarray, fn(jnp.asarray(0.3 * rng.normal(size=n)), tg))
            scale = max(float(np.max(np.abs(J_ref))), 1.0)
            assert np.max(np.abs(f - f_ref)) <= 1e-13 * scale
            assert np.max(np.abs(J - J_ref)) <= 1e-13 * scale


def test_ldl_solve_matches_numpy():
    """Pivot-free LDL^T on symmetric positive definite stacks == numpy.linalg.solve to 1e-12 (relative)."""
    rng = np.random.default_rng(0)
    for n in (5, 8):
        X = rng.normal(size=(64, n, n))
        S = X @ np.swapaxes(X, -1, -2) + np.logspace(-3, 3, 64)[:, None, None] * np.eye(n)
        b = rng.normal(size=(64, n))
        x = np.asarray(ldl_solve_unrolled(jnp.asarray(S), jnp.asarray(b)))
        ref = np.linalg.solve(S, b[..., None])[..., 0]
        assert np.max(np.abs(x - ref) / np.max(np.abs(ref), -1, keepdims=True)) <= 1e-10


def _scipy_reference(c, eta, ts, symmetric):
    """Independent reference: scipy LSODA at rtol 1e-12 on the autodiff gradient of the two-pole loss."""
    tg = leaky_integrator(c)
    loss, R = (five_loss, np.asarray(FIVE_RATES)) if symmetric else (eight_loss, np.ones(8))
    g = jax.jit(jax.grad(loss))
    x0 = (
        np.array([0, 0, 0, 1 / np.sqrt(2), 1 / np.sqrt(2)])
        if symmetric
        else np.array([0, 0, 0, 0, 1, 0, 0, 1.0])
    )
    sol = solve_ivp(
        lambda t, x: -eta * R * np.asarray(g(jnp.asarray(x), tg)),
        (0, ts[-1]),
        x0,
        method="LSODA",
        rtol=1e-12,
        atol=1e-14,
        t_eval=ts,
    )
    return np.array([float(loss(jnp.asarray(x), tg)) for x in sol.y.T])


# one compiled program (8 padded cells, 61 saves) serves the grid tests below
C = np.array([0.01, 0.03, 0.1, 0.3])
ETA = np.array([1.0, 0.5, 2.0, 1.0])
TS = np.linspace(0.0, 3.0, 61)


@pytest.fixture(scope="module")
def grid5():
    return theory.solve(leaky_integrator(C), theory.Sigma0(symmetric=True), t1=3.0, eta=ETA, ts=TS)


def test_grid_matches_tight_reference_and_rescales_eta(grid5):
    """Rodas4 grid at rtol 1e-8 (rates eta = 0.5, 1, 2 by time rescaling) vs scipy at rtol 1e-12 with the rate
    eta in the vector field: loss to 1e-6 relative, t_learn to 1e-6 relative; the stiffest cell is c = 0.01."""
    assert np.all(grid5.ok)
    for i, (c, e) in enumerate(zip(C, ETA)):
        ref = _scipy_reference(c, e, TS, True)
        assert np.max(np.abs(grid5.loss[i] - ref) / ref) <= 1e-6
        t_ref = theory_learning_time(ref)
        assert abs(grid5.t_learn[i] / t_ref - 1) <= 1e-6


def theory_learning_time(loss):
    from jaxrnn.observables import learning_time

    return learning_time(TS, loss)


def test_five_conserves_charge_and_queue_is_order_free(grid5):
    """The 5-ODE charge beta (delta - alpha) + p q is kept to 1e-8 over the run (the solver does not enforce it),
    and a cell's result does not depend on which other cells share the queue (same cell, alone)."""
    q = grid5["charge"]
    assert np.max(np.abs(q - q[:, :1])) <= 1e-8
    one = theory.solve(leaky_integrator(C[2:3]), theory.Sigma0(symmetric=True), t1=3.0, eta=ETA[2:3], ts=TS)
    np.testing.assert_array_equal(one.loss[0], grid5.loss[2])


def test_float64_without_global_x64(grid5):
    """With jax_enable_x64 off, solve still integrates in float64 (same numbers as with it on)."""
    with jax.enable_x64(False):
        r = theory.solve(leaky_integrator(C), theory.Sigma0(symmetric=True), t1=3.0, eta=ETA, ts=TS)
    assert r.loss.dtype == np.float64
    # the float32 target rates (c = 0.1 is not a float32 number) move L by ~1e-8 relative, not more
    assert np.max(np.abs(r.loss / grid5.loss - 1)) <= 1e-6


def test_failed_cells_are_flagged_with_nan():
    r = theory.solve(leaky_integrator(C), theory.Sigma0(symmetric=True), t1=3.0, eta=ETA, ts=TS, max_steps=30)
    assert not np.all(r.ok)
    bad = ~r.ok
    assert np.all(np.isnan(r.loss[bad, -1]))  # NaN from the failure on, never a number that looks right
    assert np.all(np.isfinite(r.loss[r.ok]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(eta=0.0), "eta"),
        (dict(eta=-1.0), "eta"),
        (dict(rtol=0.0), "rtol"),
        (dict(atol=-1.0), "atol"),
        (dict(max_steps=0), "max_steps"),
        (dict(ts=[0.0, 1.0, 1.0]), "ts"),
        (dict(threshold=2.0), "threshold"),
        (dict(theory=theory.Sigma0(), sigma=0.2), "sigma"),
        (dict(theory=theory.Fock(2), depth=2), "depth"),
        (dict(theory=theory.Krylov(1)), "network"),
        (dict(theory=theory.Fock(1), symmetric=True), "symmetric"),
        (dict(sigma=0.2, depth=1, symmetric=True), "symmetric"),
    ],
)
def test_bad_options_raise(kwargs, match):
    kwargs = dict(kwargs)
    th = kwargs.pop("theory", None)
    with pytest.raises(ValueError, match=match):
        theory.solve(leaky_integrator(0.1), th, t1=1.0, **kwargs)


def test_theory_objects_validate():
    with pytest.raises(ValueError, match="depth"):
        theory.Fock(-1)
    for bad in (dict(depth=8), dict(depth="deep"), dict(depth=True), dict(tol=0.0), dict(max_depth=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            theory.Fock(**bad)
    with pytest.raises(ValueError, match="sigma"):
        theory.solve(leaky_integrator(0.1), t1=1.0, sigma=[0.1, -0.2])
    with pytest.raises(ValueError, match="Fock"):
        theory.solve(leaky_integrator(0.1), t1=1.0, sigma=[0.1, 0.2], N=8, key=jax.random.key(0))
    with pytest.raises(ValueError, match="depth"):
        theory.Krylov(1.5)


# ---------------------------------------------------------------- the Fock theory (N -> inf, sigma > 0)


def _chain_model(sigma, depth, tail):
    """Independent reference: c = sigma (l1 + l2^*) on the words of length <= depth PLUS the chains 1^n w
    (n <= tail, |w| = depth) that c reaches from them, both copies; and the inclusion E of the short words."""
    import itertools

    words = [()]
    for L in range(1, depth + 1):
        words += list(itertools.product((1, 2), repeat=L))
    nk = len(words)
    for L in range(depth + 1, depth + tail + 1):
        words += [(1,) * (L - depth) + w for w in itertools.product((1, 2), repeat=depth)]
    index = {w: i for i, w in enumerate(words)}
    n = len(words)
    C1 = np.zeros((n, n))
    for w, i in index.items():
        if (1,) + w in index:
            C1[index[(1,) + w], i] += sigma
        if w and w[0] == 2:
            C1[index[w[1:]], i] += sigma
    C = np.kron(np.eye(2), C1)
    E = np.zeros((2 * n, 2 * nk))
    E[np.arange(nk), np.arange(nk)] = 1.0
    E[n + np.arange(nk), nk + np.arange(nk)] = 1.0
    return C, E


@pytest.mark.parametrize("depth", [1, 2])
def test_fock_compression_is_exact_on_the_chain_model(depth):
    """The tail T reached from the short words is invariant under W = c + E m E^T, so the loss and the
    projected gradients of the chain model equal those of the d-dimensional compression (docs/concepts.md §6)."""
    from jaxrnn.loss import population_loss_and_grad
    from jaxrnn.model import LinearRNN
    from jaxrnn.theory._fock import fock_compression

    sigma, tail = 0.35, 6
    C, E = _chain_model(sigma, depth, tail)
    Ck = fock_compression(sigma, depth)
    np.testing.assert_array_equal(E.T @ C @ E, Ck)
    D, d = E.shape
    rng = np.random.default_rng(depth)
    m = 0.4 * rng.standard_normal((d, d)) / np.sqrt(d)  # W - I stays Hurwitz: the loss is finite
    a, b = rng.standard_normal(d), rng.standard_normal(d)
    target = leaky_integrator(0.1)
    big = LinearRNN(
        jnp.asarray(C + E @ m @ E.T), jnp.asarray(np.sqrt(D) * E @ a), jnp.asarray(np.sqrt(D) * E @ b)
    )
    small = LinearRNN(jnp.asarray(Ck + m), jnp.asarray(np.sqrt(d) * a), jnp.asarray(np.sqrt(d) * b))
    Lb, gb, _ = population_loss_and_grad(big, target)
    Ls, gs, _ = population_loss_and_grad(small, target)
    assert abs(float(Lb) - float(Ls)) <= 1e-12 * abs(float(Ls))
    np.testing.assert_allclose(E.T @ np.asarray(gb.W) @ E, np.asarray(gs.W), rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.sqrt(D) * E.T @ np.asarray(gb.u), np.sqrt(d) * np.asarray(gs.u), atol=1e-12)
    np.testing.assert_allclose(np.sqrt(D) * E.T @ np.asarray(gb.v), np.sqrt(d) * np.asarray(gs.v), atol=1e-12)


@pytest.fixture(scope="module")
def fock_grid():
    ts = np.linspace(0.0, 2.0, 201)
    sig = np.array([0.1, 0.3, 0.5])
    c = np.array([[0.1], [0.2]])
    return ts, sig, c, theory.solve(leaky_integrator(c), theory.Fock(1), sigma=sig, ts=ts, t1=2.0)


def test_fock_grid_equals_per_cell_solves(fock_grid):
    """One vmapped call over (c, sigma) gives each cell's own solve."""
    ts, sig, c, r = fock_grid
    assert r.loss.shape == (2, 3, ts.size) and r.ok.all()
    for i, j in [(0, 0), (1, 2)]:
        one = theory.solve(
            leaky_integrator(float(c[i, 0])), theory.Fock(1), sigma=float(sig[j]), ts=ts, t1=2.0
        )
        np.testing.assert_allclose(r.loss[i, j], one.loss, rtol=1e-9)
        np.testing.assert_allclose(r.outlier[i, j], one.outlier, atol=1e-9)


def test_fock_truncation_error_and_auto_depth(fock_grid):
    """`truncation_error` is |t_learn(k) - t_learn(k-1)| / t_learn(k); "auto" stops at the first depth under tol."""
    ts, sig, c, r1 = fock_grid
    r0 = theory.solve(leaky_integrator(c), theory.Fock(0), sigma=sig, ts=ts, t1=2.0)
    # depth 0 is solved zero-padded inside depth 1's program for the estimate: the padding changes the
    # solver's RMS error norm, hence its steps, so the two depth-0 solves agree to the tolerance, not to 1e-12
    np.testing.assert_allclose(
        r1.extra["truncation_error"], np.abs(r1.t_learn - r0.t_learn) / r1.t_learn, rtol=1e-5
    )
    assert np.all(np.isnan(r0.extra["truncation_error"]))
    tol = 0.09  # depth 1's estimates here: 0.079 (c = 0.1, sigma = 0.1), >= 0.10 elsewhere
    auto = theory.solve(
        leaky_integrator(c), theory.Fock("auto", tol=tol, max_depth=2), sigma=sig, ts=ts, t1=2.0
    )
    r2 = theory.solve(leaky_integrator(c), theory.Fock(2), sigma=sig, ts=ts, t1=2.0)
    k = auto.extra["depth"]
    good1 = r1.extra["truncation_error"] <= tol
    np.testing.assert_array_equal(k, np.where(good1, 1, 2))  # depth 1 where its estimate passes, else 2
    assert good1.any() and not good1.all()  # one cell passes at depth 1, the others need depth 2
    np.testing.assert_allclose(auto.loss, np.where(good1[..., None], r1.loss, r2.loss), rtol=1e-9)
    np.testing.assert_allclose(
        auto.extra["truncation_error"],
        np.where(good1, r1.extra["truncation_error"], r2.extra["truncation_error"]),
        rtol=1e-5,  # "auto" compares with its own unpadded depth k - 1 (see above)
        atol=1e-6,
    )
